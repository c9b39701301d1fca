"""3FS awareness, unit-tested against fake mount tables (no test pretends a real 3FS mount)."""

import os

from pond_core.io.fs import LocalFileSystem
from pond_core.io.threefs import mount_of, read_mounts, remove_tree, threefs_mount_of


def mounts_file(tmp_path, *lines):
    path = tmp_path / "mounts"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_parses_escaped_mount_points_and_picks_the_longest(tmp_path):
    mounts = mounts_file(
        tmp_path,
        "/dev/vda1 / ext4 rw 0 0",
        "hf3fs.stage /3fs/stage fuse.hf3fs rw,nosuid 0 0",
        "server:/export /mnt/my\\040nfs nfs4 rw 0 0",
    )
    assert [m.mount_point for m in read_mounts(mounts)] == ["/", "/3fs/stage", "/mnt/my nfs"]
    assert mount_of("/mnt/my nfs/x", mounts).fstype == "nfs4"
    assert mount_of("/3fs/stage/data/ds", mounts).mount_point == "/3fs/stage"
    assert mount_of("/3fs/stagexyz", mounts).mount_point == "/"
    assert threefs_mount_of("/3fs/stage/data", mounts) is not None
    assert threefs_mount_of("/mnt/my nfs/data", mounts) is None
    assert read_mounts(str(tmp_path / "absent")) == []


def test_fstype_variants_count_as_3fs(tmp_path):
    for line in ("hf3fs /a hf3fs rw 0 0", "hf3fs.x /a fuse rw 0 0", "x /a fuse.hf3fs rw 0 0"):
        assert threefs_mount_of("/a/b", mounts_file(tmp_path, line)) is not None


def make_tree(root):
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, "sub", "f"), "w") as fh:
        fh.write("x")


def test_delete_uses_the_rm_rf_directory_on_3fs(tmp_path):
    mount = tmp_path / "m"
    os.makedirs(mount / "3fs-virt" / "rm-rf")
    mounts = mounts_file(tmp_path, "/dev/vda1 / ext4 rw 0 0", f"hf3fs.stage {mount} fuse.hf3fs rw 0 0")
    make_tree(str(mount / "ds"))
    assert remove_tree(str(mount / "ds"), mounts) == "3fs-rm-rf"
    assert not os.path.exists(mount / "ds")
    # The servers empty rm-rf; here it still holds the tree, renamed with a unique suffix.
    assert [n.startswith("ds-") for n in os.listdir(mount / "3fs-virt" / "rm-rf")] == [True]


def test_delete_falls_back_to_rmtree_elsewhere(tmp_path):
    mount = tmp_path / "m"
    mounts = mounts_file(tmp_path, f"hf3fs.stage {mount} fuse.hf3fs rw 0 0")
    make_tree(str(mount / "ds"))  # 3FS per the table, but no 3fs-virt/rm-rf: not the real thing
    assert remove_tree(str(mount / "ds"), mounts) == "rmtree"
    assert not os.path.exists(mount / "ds")
    plain = mounts_file(tmp_path, "/dev/vda1 / ext4 rw 0 0")
    make_tree(str(tmp_path / "ds2"))
    LocalFileSystem(mounts_path=plain).delete(str(tmp_path / "ds2"), recursive=True)
    assert not os.path.exists(tmp_path / "ds2")
