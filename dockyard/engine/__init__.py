"""The engine: one service layer with all policy, behind every front end."""
