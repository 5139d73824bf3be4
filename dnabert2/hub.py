"""Models named by Hugging Face Hub id (`owner/name`, optionally `@revision`), fetched with
huggingface_hub into its standard cache and then used as a local folder is. A path that exists
always wins over an id, and so does a folder here named as its owner when no revision is given
(`models/mymodl` is a mistyped path, not a repository). HF_HOME, HF_ENDPOINT, HF_HUB_OFFLINE and
HF_TOKEN (private repositories) act as they do for every Hugging Face tool."""

import importlib
import json
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

from tqdm.auto import tqdm

from .errors import UserError

log = logging.getLogger(__name__)

# What loading a model reads: configuration, tokenizer, weights, a LoRA adapter. The released
# repository's Python files (bert_layers.py, …) are never fetched, so never run.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # a whole model's, in the order they are looked for
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # a LoRA fine-tuning folder's
MODEL_FILES = ["*.json", *WEIGHT_FILES, ADAPTER_FILES[1]]
HTTP_CLIENTS = ("httpx2", "httpx")  # huggingface_hub 2's, and 1's (before, requests')

_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9])(?:@(?P<revision>[\w./-]+))?")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SNAPSHOT = re.compile(r"models--(?P<owner>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<commit>[0-9a-f]{40})$")


def find_weights(folder) -> Path | None:
    """A model folder's weights file (of WEIGHT_FILES, the first there), or None."""
    return next((Path(folder) / name for name in WEIGHT_FILES if (Path(folder) / name).is_file()), None)


def hub_id(name) -> tuple[str, str | None] | None:
    """(repository, revision) when `name` reads as a Hub id and is not a path here (see above)."""
    match = _ID.fullmatch(str(name))
    if match is None or Path(name).exists() or shadowing_folder(name):
        return None
    return match["repo"], match["revision"]


def shadowing_folder(name) -> str | None:
    """The folder here, named as the owner of `name` (an id without revision), that makes `name` a
    path: `models/mymodl` is a mistyped path, not a repository."""
    match = _ID.fullmatch(str(name))
    if match is None or match["revision"] is not None:
        return None
    owner = match["repo"].split("/")[0]
    return owner if Path(owner).is_dir() else None


def model_path(name, *, newest: bool = False) -> Path:
    """A model folder (or tokenizer file) on disk as it is; a Hub id fetched, or found in the cache.
    newest: what the Hub holds now or an error, never a cached copy in its stead (`dnabert2 fetch`'s
    job, unless HF_HUB_OFFLINE is set), where huggingface_hub falls back on the cache when the Hub
    fails to answer."""
    named = hub_id(name)
    if named is None:
        return Path(name)
    repo, revision = named
    # Imported here: most commands never fetch, and huggingface_hub takes a while to import.
    from huggingface_hub import constants, errors, get_token, snapshot_download

    where = f"{repo}@{revision}" if revision else repo
    endpoint = constants.ENDPOINT
    if not _offline() and urlsplit(endpoint).scheme not in ("http", "https"):
        raise UserError(f"{where}: HF_ENDPOINT {endpoint!r} is not an http(s) URL")
    for client in HTTP_CLIENTS:  # a line per HTTP request is noise in a command's log
        logging.getLogger(client).setLevel(logging.WARNING)
    try:
        if newest and not _offline():
            try:  # a dry run asks the Hub and gives up, where a download would take the cache
                snapshot_download(repo, revision=revision, allow_patterns=MODEL_FILES, dry_run=True,
                                  tqdm_class=_Silent)
            except errors.DryRunError as error:
                if isinstance(error.__cause__, errors.HfHubHTTPError):
                    raise error.__cause__ from None
                raise UserError(f"{where}: the Hugging Face Hub cannot be reached ({_first_line(error.__cause__)}); "
                                "its cached copy may be out of date") from None
        # A commit is what it is; a branch or tag the Hub cannot resolve, huggingface_hub takes from the
        # cache, however old, without a word: said here.
        unanswered = None if newest or _offline() or _COMMIT.fullmatch(revision or "") else _unanswered(repo, revision)
        folder = Path(snapshot_download(repo, revision=revision, allow_patterns=MODEL_FILES))
        if unanswered:
            log.warning("%s: the Hugging Face Hub did not answer (%s); using the cached %s, which may not be its "
                        "newest", where, unanswered, model_name(folder))
        return folder
    except errors.HFValidationError:
        raise UserError(f"{name}: no such file or folder here, nor a valid Hugging Face Hub id") from None
    except errors.RevisionNotFoundError:
        short = re.fullmatch(r"[0-9a-f]{4,39}", revision or "") is not None
        raise UserError(f"{where}: no revision {revision!r} in that Hugging Face Hub repository"
                        + " (if it is a commit: the Hub takes one by its full 40-character hash)" * short) from None
    except errors.GatedRepoError:
        raise UserError(f"{where}: a gated model on the Hugging Face Hub: ask for access on its page "
                        f"({endpoint}/{repo}), then give a token of the account let in (HF_TOKEN, or a login)") from None
    except errors.RepositoryNotFoundError:
        access = ("the token given (HF_TOKEN, or a login) has no access to it if it is private or gated" if get_token()
                  else "a private or gated one needs HF_TOKEN")
        raise UserError(f"{name}: no such file or folder here, nor a model of that name on the Hugging Face Hub "
                        f"({access})") from None
    except errors.LocalEntryNotFoundError as error:
        reason = "HF_HUB_OFFLINE is set" if _offline() else f"the Hub cannot be reached: {_first_line(error.__cause__)}"
        # A branch moved on whose new files never arrived: its commit in the cache lacks some (huggingface_hub 2).
        if isinstance(error, getattr(errors, "IncompleteSnapshotError", ())):
            raise UserError(f"{where}: the Hugging Face cache holds only part of it ({reason}); `dnabert2 fetch {where}` "
                            "with the Hub reachable completes it") from None
        raise UserError(f"{where}: no such file or folder here, nor in the Hugging Face cache ({reason})") from None
    except json.JSONDecodeError:  # a proxy's login page, a web server at a mistyped HF_ENDPOINT
        raise UserError(f"{where}: {endpoint} does not answer as the Hugging Face Hub does (not JSON); is HF_ENDPOINT "
                        "right?") from None
    except (errors.HfHubHTTPError, OSError, *_transfer_errors()) as error:
        raise UserError(f"{where}: cannot fetch it from the Hugging Face Hub ({_first_line(error)})") from None


def _unanswered(repo: str, revision: str | None) -> str | None:
    """Why the Hub does not say which commit `revision` of `repo` is now; None when it does. Asked as
    snapshot_download asks, and given no longer than huggingface_hub gives a file's metadata."""
    from huggingface_hub import HfApi, constants, errors

    try:
        HfApi().repo_info(repo, revision=revision or constants.DEFAULT_REVISION, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except (errors.HfHubHTTPError, OSError, json.JSONDecodeError, *_transfer_errors()) as error:
        return _first_line(error)
    return None


def _transfer_errors() -> tuple[type[Exception], ...]:
    """The HTTP client's own errors, which huggingface_hub lets through where a file fails to download
    once the repository has answered (its storage host blocked, the connection cut): httpx2's from
    huggingface_hub 2, httpx's in 1 (requests' are OSErrors)."""
    found = []
    for client in HTTP_CLIENTS:
        try:
            found.append(importlib.import_module(client).HTTPError)
        except ImportError:
            pass
    return tuple(found)


class _Silent(tqdm):
    """A progress bar that shows nothing: a dry run's would say it fetches what it does not."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "disable": True})


def cached_id(folder) -> tuple[str, str] | None:
    """(`owner/name`, commit) of a folder of the Hub cache; None for any other folder."""
    match = _SNAPSHOT.search(Path(folder).as_posix())
    return (f"{match['owner']}/{match['name']}", match["commit"]) if match else None


def model_name(folder) -> str:
    """How outputs record a model: `owner/name@commit` for a folder of the Hub cache (the revision
    pinned), the path otherwise."""
    if hub := cached_id(folder):
        return "@".join(hub)
    # A folder here named as an id is written as a path: the record would name the Hub's model of that name.
    return f"./{folder}" if _ID.fullmatch(str(folder)) else str(folder)


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE


def _first_line(error) -> str:
    return str(error).strip().splitlines()[0][:200] if error and str(error).strip() else type(error).__name__
