"""Volumes (数据卷): bind mounts, named and anonymous volumes, tmpfs. Chapter 05 fills this package;
each volume becomes one more entry of the OCI config's `mounts`, after Docker's defaults.
"""
