"""k3s stand-in: the airgap image import at start and `ctr images ls` (see the package docstring).

What the real k3s v1.32 does, read in its source (the functions named here are the ones cited in
tests/standins/k3s/README.md):

- pkg/agent/containerd/containerd.go `Run` starts containerd, then `PreloadImages`: clears the
  pinned labels k3s set on earlier imports (`clearLabels`), then `importAndWatchImages`
  (watcher.go) enqueues `<data-dir>/agent/images` and blocks until the queue is empty, i.e. every
  file there was imported before the kubelet starts. Since the January 2025 releases (v1.32.0,
  v1.31.5, ...) the same watcher also imports files added while k3s runs (not modelled here: the
  stand-in imports at start only, what every release does).
- watcher.go `processImageEvent`: a directory is listed and its entries enqueued (recursively);
  a file is imported only when `isFileSupported` (case-sensitive suffix from wharfie
  `tarfile.SupportedExtensions` plus `.txt`); everything else is skipped without a word. With a
  user-created `.cache.json` in the images dir a file already imported is skipped unless its size
  changed and its mtime is newer (`loadCache`, `syncCache`, `pruneCache`).
- containerd.go `preloadFile`: `.txt` is a list of references pulled through CRI (`prePullImages`);
  anything else is opened by wharfie `tarfile.GetOpener` (.tar, .tar.lz4, .tar.bz2/.tbz,
  .tar.gz/.tgz, .tar.zst/.tzst) and handed to containerd's `client.Import`, whose
  `core/images/archive/importer.go` `ImportIndex` reads an OCI layout (`oci-layout` +
  `index.json`) or a `docker save` archive (`manifest.json` with `RepoTags`, normalized to
  docker.io/library/...:tag). Then `labelImages` (pinned), `retagImages` (logs `Imported <name>`,
  adds `<name>@<digest>`, logs `Tagged ...`).
- A failure is logged and the next file follows: `Failed to process image event: failed to import
  <file>: ...` (`processNextEventForImages`); a good file logs `Imported images from <file> in
  <duration>`.

The stand-in keeps containerd's image store as JSON under <data-dir>/agent/containerd (containerd's
root) and writes a pointer at the containerd address (/run/k3s/containerd/containerd.sock; test
hook K3S_STANDIN_CONTAINERD_ADDRESS) that `ctr` reads, as the real ctr dials that socket.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

from k3s_standin.common import _log, info

# wharfie pkg/tarfile SupportedExtensions ("kept in sync with the decompressor list"), plus the
# pre-pull list k3s adds in watcher.go isFileSupported.
SUPPORTED_EXTENSIONS = (".tar", ".tar.lz4", ".tar.bz2", ".tbz", ".tar.gz", ".tgz", ".tar.zst", ".tzst")
PULL_LIST = ".txt"
DEFAULT_ADDRESS = "/run/k3s/containerd/containerd.sock"
NAMESPACE = "k8s.io"
K3S_PINNED = "io.cattle.k3s.pinned"
CRI_PINNED = "io.cri-containerd.pinned"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class ArchiveError(Exception):
    """One file failed; the message is what k3s puts after `failed to import <file>: `."""


def store_path(data_dir: str) -> str:
    # containerd's root is <data-dir>/agent/containerd (its metadata lives there, so imported
    # images survive a restart); the stand-in keeps its image table beside it.
    return os.path.join(data_dir, "agent", "containerd", "k3s-standin-images.json")


def containerd_address() -> str:
    return os.environ.get("K3S_STANDIN_CONTAINERD_ADDRESS") or DEFAULT_ADDRESS


def load_store(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def save_store(path: str, images: dict) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(images, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def is_file_supported(path: str) -> bool:
    # strings.HasSuffix: case-sensitive, unlike the openers' HasSuffixI.
    return path.endswith(SUPPORTED_EXTENSIONS + (PULL_LIST,))


def go_duration(seconds: float) -> str:
    """Go's time.Duration String() for the sub-minute durations an import takes."""
    if seconds >= 1:
        return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds * 1e6:.3f}".rstrip("0").rstrip(".") + "µs"


# ------------------------------------------------------------------ references
def normalize(ref: str) -> str:
    """distribution/reference ParseDockerRef: docker.io/library/ for short names, :latest added."""
    name, sep, digest = ref.partition("@")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    if not name or name != name.lower():
        raise ArchiveError(f'normalize image ref "{ref}": invalid reference format: repository name must be lowercase')
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + name
    if name.startswith("docker.io/") and name.count("/") == 1:
        name = "docker.io/library/" + name[len("docker.io/") :]
    if sep:
        return f"{name}@{digest}"
    return f"{name}:{tag or 'latest'}"


def named_tagged(name: str) -> tuple[str, str]:
    """parseNamedTagged: the name must carry a tag (retagImages needs it)."""
    repo = name.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if "@" in name or ":" not in last:
        raise ArchiveError(f"failed to retag images: failed to parse tag for image {name}: not a tagged reference")
    return repo.rsplit(":", 1)[0], repo.rsplit(":", 1)[1]


# --------------------------------------------------------------------- archives
def open_archive(path: str):
    """wharfie tarfile.GetOpener, by suffix (case-insensitive there): returns the opener.

    Only gzip reads a header when the opener is called (before `Importing images from`); the
    other decoders fail while containerd reads the stream, inside the import."""
    lower = path.lower()
    if lower.endswith(".tar"):
        return lambda: open(path, "rb")
    if lower.endswith((".tar.gz", ".tgz")):
        with open(path, "rb") as handle:
            if handle.read(2) != b"\x1f\x8b":
                raise ArchiveError("gzip: invalid header")
        return lambda: gzip.open(path, "rb")
    if lower.endswith((".tar.bz2", ".tbz")):
        return lambda: bz2.open(path, "rb")
    if lower.endswith(("tar.zst", ".tzst", ".tar.lz4")):
        # k3s decodes these in-process (klauspost/compress zstd, pierrec lz4); Python before
        # 3.14 has neither, so the stand-in borrows the CLI where the machine has it.
        tool = "lz4" if lower.endswith(".lz4") else "zstd"

        def decode():
            if not shutil.which(tool):
                raise ArchiveError(f"{tool} decoding is not modelled without the {tool} program (k3s test stand-in)")
            run = subprocess.run([tool, "-dc", path], capture_output=True, check=False)
            if run.returncode != 0:
                raise ArchiveError(f"{tool}: {run.stderr.decode(errors='replace').strip()}")
            return io.BytesIO(run.stdout)

        return decode
    raise ArchiveError("unhandled file type; supported extensions: " + " ".join(SUPPORTED_EXTENSIONS))


def go_json(value) -> bytes:
    # Go's json.Marshal: compact, struct field order.
    return json.dumps(value, separators=(",", ":")).encode()


def layer_media_type(blob: bytes) -> str:
    # importer.go resolveLayers: compression.DecompressStream; uncompressed -> docker tar layer.
    if blob[:3] in (b"\x1f\x8b\x08", b"BZh") or blob[:4] == b"\x28\xb5\x2f\xfd" or blob[:6] == b"\xfd7zXZ\x00":
        return DOCKER_LAYER_GZIP
    return DOCKER_LAYER


def platform_of(config: bytes) -> str:
    try:
        cfg = json.loads(config)
    except ValueError:
        return ""
    parts = [cfg.get("os", ""), cfg.get("architecture", "")] + ([cfg["variant"]] if cfg.get("variant") else [])
    return "/".join(parts) if all(parts) else ""


def read_archive(stream) -> list[dict]:
    """importer.go ImportIndex + client.Import: the named images of one archive."""
    blobs: dict[str, bytes] = {}
    symlinks: dict[str, str] = {}
    layout = None
    manifests = None
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                name = os.path.normpath(member.name)
                if member.issym():
                    symlinks[name] = os.path.normpath(os.path.join(os.path.dirname(member.name), member.linkname))
                if not member.isreg():
                    continue
                data = archive.extractfile(member).read()
                if name == "oci-layout":
                    try:
                        layout = json.loads(data)
                    except ValueError as exc:
                        raise ArchiveError(f'untar oci layout "{member.name}": {exc}') from exc
                elif name == "manifest.json":
                    try:
                        manifests = json.loads(data)
                    except ValueError as exc:
                        raise ArchiveError(f'untar manifest "{member.name}": {exc}') from exc
                else:
                    blobs[name] = data
    except tarfile.ReadError as exc:
        # Go's archive/tar: an empty stream is simply no entries; garbage an invalid header.
        if str(exc) != "empty file":
            raise ArchiveError("archive/tar: invalid tar header") from exc
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError("unexpected EOF") from exc
    except OSError as exc:  # gzip.BadGzipFile, bz2 data errors
        raise ArchiveError(str(exc)) from exc

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    images: list[dict] = []
    if layout and layout.get("imageLayoutVersion"):
        if layout["imageLayoutVersion"] != "1.0.0":
            raise ArchiveError(f"unsupported OCI version {layout['imageLayoutVersion']}")
        if "index.json" not in blobs:
            raise ArchiveError("missing index.json in OCI layout 1.0.0")
        index = json.loads(blobs["index.json"])
        by_digest = {digest(data): data for data in blobs.values()}
        for desc in index.get("manifests") or []:
            notes = desc.get("annotations") or {}
            # client.Import imageName: the containerd name, else the OCI ref name as it is.
            name = notes.get(ANNOTATION_IMAGE_NAME) or notes.get(ANNOTATION_REF_NAME) or ""
            if not name:
                continue
            size, platform = desc.get("size", 0), ""
            manifest = by_digest.get(desc.get("digest", ""))
            if manifest is not None:
                try:
                    parsed = json.loads(manifest)
                except ValueError:
                    parsed = {}
                config = parsed.get("config") or {}
                size += config.get("size", 0) + sum(layer.get("size", 0) for layer in parsed.get("layers") or [])
                platform = platform_of(by_digest.get(config.get("digest", ""), b""))
            images.append(
                {
                    "name": name,
                    "target": {k: desc.get(k) for k in ("mediaType", "digest", "size")},
                    "size": size,
                    "platform": platform or "-",
                }
            )
        return images
    if manifests is None:
        raise ArchiveError("unrecognized image format")
    for name, target in symlinks.items():
        if target not in blobs:
            raise ArchiveError(f'no target for symlink layer from "{name}" to "{target}"')
        blobs[name] = blobs[target]
    for entry in manifests:
        config = blobs.get(entry.get("Config", ""))
        if config is None:
            raise ArchiveError(f'image config "{entry.get("Config", "")}" not found')
        layers = []
        for layer_name in entry.get("Layers") or []:
            if layer_name not in blobs:
                raise ArchiveError(f'failed to resolve layers: layer "{layer_name}" not found')
            blob = blobs[layer_name]
            layers.append({"mediaType": layer_media_type(blob), "digest": digest(blob), "size": len(blob)})
        # The docker schema2 manifest containerd writes (importer.go), so the digest is the one
        # containerd would record for this archive.
        manifest = go_json(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "digest": digest(config), "size": len(config)},
                "layers": layers,
            }
        )
        target = {"mediaType": DOCKER_MANIFEST, "digest": digest(manifest), "size": len(manifest)}
        size = len(manifest) + len(config) + sum(layer["size"] for layer in layers)
        for ref in entry.get("RepoTags") or []:
            images.append({"name": normalize(ref), "target": target, "size": size, "platform": platform_of(config)})
    return images


# ------------------------------------------------------------------ the import
def import_file(path: str, images: dict) -> None:
    """containerd.go preloadFile for one file: import, pin, retag."""
    if path.endswith(PULL_LIST):
        info(f"Pulling images from {path}")
        errors = []
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                ref = line.strip()
                if not ref:
                    continue
                try:
                    name = normalize(ref)
                except ArchiveError:
                    _log("error", f'Failed to parse image reference "{ref}": could not parse reference: {ref}')
                    continue
                if name in images:
                    info(f"Image {ref} has already been pulled")
                    continue
                info(f"Pulling image {ref}")
                errors.append(
                    f'rpc error: code = Unknown desc = failed to pull and unpack image "{name}": failed to resolve '
                    f'reference "{name}": the k3s stand-in has no registry'
                )
        if errors:
            raise ArchiveError(f"failed to pull images from {path}: " + ", ".join(errors))
        return
    opener = open_archive(path)
    info(f"Importing images from {path}")
    try:
        with opener() as stream:
            found = read_archive(stream)
    except ArchiveError as exc:
        raise ArchiveError(f"failed to import images from {path}: {exc}") from exc
    labels = {K3S_PINNED: "pinned", CRI_PINNED: "pinned"}
    for image in found:
        # labelImages pins every imported image before retagImages parses the names.
        images[image["name"]] = dict(image, labels=labels)
    for image in found:
        repo, _tag = named_tagged(image["name"])
        info(f"Imported {image['name']}")
        by_digest = f"{repo}@{image['target']['digest']}"
        images[by_digest] = dict(image, name=by_digest, labels=labels)
        info(f"Tagged {by_digest}")


def import_images(data_dir: str) -> None:
    """PreloadImages at start: clear earlier pins, import every supported file, keep the store."""
    root = os.path.join(data_dir, "agent", "images")
    path = store_path(data_dir)
    images = load_store(path)
    # clearLabels: pins of earlier imports go; what is imported now is pinned again.
    for image in images.values():
        image.get("labels", {}).pop(K3S_PINNED, None)
        image.get("labels", {}).pop(CRI_PINNED, None)
    cache_path = os.path.join(root, ".cache.json")
    cache = None
    if os.path.isfile(cache_path):
        cache = {}
        try:
            with open(cache_path, encoding="utf-8") as handle:
                text = handle.read()
            cache = json.loads(text) if text else {}
        except (OSError, ValueError) as exc:
            _log("error", f"Failed to unmarshal image import fileinfo cache: {exc}")
    seen = set()
    queue = [root] if os.path.isdir(root) else []
    while queue:
        key = queue.pop(0)
        if os.path.isdir(key):
            queue.extend(os.path.join(key, entry) for entry in sorted(os.listdir(key)))
            continue
        if not is_file_supported(key):
            continue
        stat = os.stat(key)
        seen.add(key)
        last = (cache or {}).get(key)
        if last and not (stat.st_size != last.get("size") and stat.st_mtime > last.get("mtime", 0)):
            continue
        start = time.monotonic()
        try:
            import_file(key, images)
        except (ArchiveError, OSError) as exc:
            _log("error", f"Failed to process image event: failed to import {key}: {exc}")
            continue
        info(f"Imported images from {key} in {go_duration(time.monotonic() - start)}")
        if cache is not None:
            cache[key] = {"size": stat.st_size, "mtime": stat.st_mtime}
    if cache is not None:
        # pruneCache + syncCache: only a cache file the user created is kept up to date.
        with open(cache_path, "w", encoding="utf-8") as handle:
            json.dump({k: v for k, v in cache.items() if k in seen}, handle)
    if images or os.path.exists(path):
        save_store(path, images)


def publish(data_dir: str) -> None:
    """The containerd socket ctr dials: here a file naming the server and its image store."""
    address = containerd_address()
    try:
        os.makedirs(os.path.dirname(address), exist_ok=True)
        with open(address, "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "store": store_path(data_dir)}, handle)
    except OSError as exc:
        _log("warning", f"k3s stand-in: cannot write the containerd address {address}: {exc}")


# ------------------------------------------------------------------------- ctr
def human_bytes(size: float) -> str:
    # ctr's progress.Bytes.
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.1f} {units[index]}"


def tabwriter(rows: list[list[str]]) -> str:
    # text/tabwriter (minwidth 1, padding 1, ' '), every cell tab-terminated as ctr writes them.
    widths = [max(len(row[i]) for row in rows) + 1 for i in range(len(rows[0]))]
    return "".join("".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + "\n" for row in rows)


def cmd_ctr(argv: list[str]) -> int:
    """`ctr` / `k3s ctr`: `[--address A] [--namespace N] images ls [-q]` (pkg/ctr/main.go defaults)."""
    address = os.environ.get("CONTAINERD_ADDRESS") or containerd_address()
    namespace = os.environ.get("CONTAINERD_NAMESPACE") or NAMESPACE
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        name, eq, value = flag.partition("=")
        if name in ("-a", "--address", "-n", "--namespace"):
            if not eq:
                value = args.pop(0) if args else ""
            if name in ("-a", "--address"):
                address = value
            else:
                namespace = value
        else:
            sys.stderr.write(f"ctr: flag provided but not defined: {flag}\n")
            return 1
    if len(args) < 2 or args[0] not in ("images", "image", "i") or args[1] not in ("ls", "list"):
        sys.stderr.write(f"ctr: `{' '.join(args)}` is not modelled by the k3s test stand-in (only `images ls [-q]`)\n")
        return 1
    quiet = any(a in ("-q", "--quiet") for a in args[2:])
    try:
        with open(address, encoding="utf-8") as handle:
            pointer = json.load(handle)
        os.kill(int(pointer["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        sys.stderr.write(
            f'ctr: failed to dial "{address}": connection error: desc = "transport: error while dialing: '
            f'dial unix {address}: connect: connection refused"\n'
        )
        return 1
    images = load_store(pointer["store"]) if namespace == NAMESPACE else {}
    if quiet:
        for name in sorted(images):
            print(name)
        return 0
    rows = [["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]]
    for name in sorted(images):
        image = images[name]
        labels = ",".join(f"{k}={v}" for k, v in sorted(image.get("labels", {}).items())) or "-"
        target = image["target"]
        rows.append(
            [name, target["mediaType"], target["digest"], human_bytes(image["size"]), image["platform"], labels]
        )
    sys.stdout.write(tabwriter(rows))
    return 0
