"""UnionFS (联合文件系统): how an image's read-only layers and a container's writable one become one tree.

An image is a stack of layers, and a container adds one writable layer on top. The modules, in
the order chapter 02 builds them (docs/02-unionfs.md):

- `model.py`: overlayfs's rules (lookup, copy-up, whiteouts, opaque directories) in plain Python,
  on real directories, writing the upper layer in the kernel's own format;
- `overlay.py`: the same stack mounted by the kernel, with one mount(2) of type "overlay";
- `changeset.py`: a layer as a file, the OCI layer tar (whiteouts as `.wh.` entries), made from an
  upper directory and applied safely onto a directory;
- `target.py`: the directory a layer is applied onto: names resolved inside it, a preview of it
  that lets `apply` refuse a layer before writing, and a journal that undoes a half-applied one;
- `diff.py`: `docker diff`, what a container changed (A, C, D), read from its upper directory.
"""
