"""Hub: download a preset's checkpoint from the Hugging Face hub into huggingface_hub's cache.

Each weight file is checked against the sha256 the hub lists for it before the folder is returned; a file that
differs is removed from the cache. clip_edge.checkpoints reads the downloaded folder.
"""

import os
import re

from clip_edge import presets
from clip_edge.checkpoint_files import CheckpointError, files_sha256, shard_names


def download_preset(preset, revision=None):
    """Download the preset's Hugging Face repository (config and safetensors weights) at `revision` (default:
    the preset's pinned commit, presets.PRESETS[preset]["hf_revision"]) into huggingface_hub's cache and return
    the local directory. Each weight file's sha256 is checked against the hub's before the directory is returned;
    a file that differs is removed from the cache. Offline, fails at once with the alternatives."""
    entry = presets.get_preset(preset)
    repo = entry["hf_repo"]
    revision = revision or entry["hf_revision"]
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    # Unreachable, huggingface_hub retries each file for ~23 s before it looks in its cache; one probe
    # without retries decides instead, and then only the cache is used.
    unreachable = _hub_unreachable(repo, revision)
    requested = []  # file names in order, the last one for the error message

    def download(name):
        requested.append(name)
        return hf_hub_download(repo, name, revision=revision, local_files_only=unreachable)

    try:
        config = download("config.json")
        try:
            weights = {"model.safetensors": download("model.safetensors")}
        except EntryNotFoundError as error:
            # huggingface_hub's LocalEntryNotFoundError (no answer, or an HTTP error such as a 500, and nothing
            # cached) is an EntryNotFoundError too; only the hub's 404 means there is no such file.
            if isinstance(error, LocalEntryNotFoundError):
                raise
            index = download("model.safetensors.index.json")
            weights = {shard: download(shard) for shard in shard_names(index)[1]}
        expected = {name: _hub_sha256(repo, revision, name, path, unreachable) for name, path in weights.items()}
    except CheckpointError:
        raise
    # Besides huggingface_hub's own errors, a connection cut in mid-file or a timeout raises the HTTP client's
    # transport errors, whose classes depend on huggingface_hub's version (requests', httpx', httpx2's).
    except Exception as error:  # noqa: BLE001
        cause = error.__cause__ or error.__context__
        reason = ("the hub did not answer and huggingface_hub's cache does not hold the files" if unreachable
                  else f"{requested[-1]}: {type(error).__name__}: {error}"
                  + (f" ({type(cause).__name__}: {cause})" if cause else ""))
        raise CheckpointError(
            f"could not download {repo} for preset {preset!r} ({reason}). Without network "
            f"access, pass weights=<path to a local checkpoint directory or file> or load_weights=False for a "
            "random model") from error
    for name, path in weights.items():
        actual = files_sha256([path])
        if actual != expected[name]:
            _remove_cached(path)
            raise CheckpointError(
                f"{repo} at {revision}: {name} has sha256 {actual}, the hub lists {expected[name]}; the file was "
                "removed from huggingface_hub's cache and nothing was loaded (download again)")
    # hf_hub_download puts every file of one revision in the same snapshot folder.
    return os.path.dirname(config)


def _hub_sha256(repo, revision, name, path, offline):
    """The sha256 the hub lists for an LFS file: its LFS object id, which the hub sends as the X-Linked-Etag of
    the file's URL and huggingface_hub returns as HfFileMetadata.etag. Offline, the name of the cached blob:
    huggingface_hub files each download under that same etag (blobs/<etag>)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    if offline:
        etag, where = os.path.basename(os.path.realpath(path)), "huggingface_hub's cache"
    else:
        etag, where = get_hf_file_metadata(hf_hub_url(repo, name, revision=revision)).etag, "the hub"
    if not (etag and re.fullmatch(r"[0-9a-f]{64}", etag)):
        if not offline:
            _remove_cached(path)  # not what the hub keeps weights as; offline it may be the only copy
        raise CheckpointError(f"{repo} at {revision}: {where} gives no sha256 for {name} (etag {etag!r}; weight "
                              "files are stored with Git LFS, whose object id is the file's sha256); nothing "
                              "was loaded")
    return etag


def _remove_cached(path):
    """Remove a downloaded file from huggingface_hub's cache: the snapshot's link and the blob it names."""
    blob = os.path.realpath(path)
    for name in {path, blob}:
        if os.path.lexists(name):
            os.remove(name)


def _hub_unreachable(repo, revision):
    """True when one metadata request for the repository's config.json, without retries, gets no HTTP answer
    (connection refused, no DNS, timeout, offline mode)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    try:
        get_hf_file_metadata(hf_hub_url(repo, "config.json", revision=revision))
    except HfHubHTTPError:
        return False  # the hub answered; the download reports what it said
    except Exception:  # noqa: BLE001 -- the transport errors are the HTTP client's own classes
        return True
    return False
