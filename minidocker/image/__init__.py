"""Images (镜像): read-only, layered root filesystems in the OCI image format. Chapter 03 fills this
package: the content-addressed store (an OCI image layout), references, run IMAGE, commit, save
and load, pull and push. Until then a container runs from a plain directory (`--rootfs DIR`).
"""
