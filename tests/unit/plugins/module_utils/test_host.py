"""Image identity as the archive names it, for both of Docker's image stores (module_utils/host.py)."""

from __future__ import annotations

import json

from ansible_collections.integr8scode.provision.plugins.module_utils.host import image_ids

CONFIG = "sha256:" + "c" * 64  # what `docker save`'s manifest.json calls Config
MANIFEST = "sha256:" + "m" * 64  # what the containerd image store reports as .Id after the load


def engine(ids):
    """run_command / get_bin_path of a host whose `docker image inspect` knows ``ids``."""

    def run_command(argv):
        ref = argv[-1]
        return (0, ids[ref] + "\n", "") if ref in ids else (1, "", f"Error: No such image: {ref}")

    return run_command, lambda name: "/bin/true"


def test_classic_store_ids_are_reported_as_they_are(tmp_path):
    found, record = image_ids(*engine({"app:1": CONFIG}), ["app:1", "gone:1"], str(tmp_path / "missing.json"))
    assert found == {"app:1": CONFIG, "gone:1": None} and record == {}


def test_containerd_store_ids_are_translated_through_the_load_record(tmp_path):
    path = tmp_path / "image-ids.json"
    path.write_text(json.dumps({"app:1": {"archive_id": CONFIG, "engine_id": MANIFEST}}))
    found, record = image_ids(*engine({"app:1": MANIFEST}), ["app:1"], str(path))
    assert found == {"app:1": CONFIG} and record["app:1"]["engine_id"] == MANIFEST


def test_an_image_that_changed_since_the_load_is_not_translated(tmp_path):
    path = tmp_path / "image-ids.json"
    path.write_text(json.dumps({"app:1": {"archive_id": CONFIG, "engine_id": MANIFEST}}))
    other = "sha256:" + "d" * 64
    assert image_ids(*engine({"app:1": other}), ["app:1"], str(path))[0] == {"app:1": other}


def test_an_unreadable_record_is_empty(tmp_path):
    path = tmp_path / "image-ids.json"
    path.write_text("{not json")
    assert image_ids(*engine({"app:1": MANIFEST}), ["app:1"], str(path)) == ({"app:1": MANIFEST}, {})
