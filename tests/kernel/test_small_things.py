"""The small things users notice (issue 11): supplementary groups, local digests, push
output and compression, export's entries, each as Docker has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.testing.bundles import make_rootfs_tar
from dockyard.testing.cli import Dockyard

pytestmark = pytest.mark.root


def _accounts(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                           "app:x:1000:1000::/home/app:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nwheel:x:10:root\napp:x:1000:\n"
                                          "staff:x:50:app,other\n")


@pytest.mark.parametrize(("user", "expected"), [
    # Docker's additionalGids: the primary gid, then the groups that list the user
    (None, "uid=0(root) gid=0(root) groups=0(root),10(wheel)"),
    # (the kernel keeps the groups sorted)
    ("app", "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"),
    # an explicit group: that group alone (runc's GetExecUser: no Sgids then)
    ("app:staff", "uid=1000(app) gid=50(staff) groups=50(staff)"),
    ("1000:10", "uid=1000(app) gid=10(wheel) groups=10(wheel)"),
    # a uid without a passwd entry: gid 0, which is also its one group
    ("4242", "uid=4242 gid=0(root) groups=0(root)"),
])
def test_id_lists_the_primary_group(box: Dockyard, tmp_path: Path, user: str | None,
                                    expected: str) -> None:
    tar = make_rootfs_tar(tmp_path / "accounts", _accounts)
    box("import", "-c", 'CMD ["sh"]', str(tar), "accounts:1")
    flags = ["--user", user] if user else []
    assert box("run", "--rm", *flags, "accounts:1", "id").stdout.strip() == expected
