"""The benchmark grid: methods x parameters x datasets x seeds, resumable.

A grid file (YAML)::

    name: quick
    datasets: [synthetic, icd10cm, ../shared/datasets/rcv1-v2-dev]   # names or folders
    seeds: [0, 1, 2]
    decode: [threshold, top-down]          # every fit is decoded with each policy
    threshold: 0.5                         # optional
    methods:
      - method: flat-svm
        params: {C: 1.0}                   # fixed values
        grid: {ngram_max: [1, 2]}          # each list is an axis of the grid
        datasets: [synthetic]              # optional: only these of the grid's datasets
        space: {C: {low: 0.01, high: 100, log: true}}   # optional: what `hmtc-bench tune`
                                           # searches, instead of the method's SEARCH_SPACE

Validation (``load_grid``, before any data is loaded; each error names the file and the
entry): ``datasets`` and ``methods`` must be non-empty lists (a scalar such as
``datasets: synthetic`` is refused: lists are what these keys hold in every grid, and a lone
mapping under ``methods`` is usually a lost dash); ``seeds`` and ``decode`` are lists too,
but a single value there is read as a one-element list (``seeds: 0`` is ``[0]``, ``decode:
threshold`` is ``[threshold]``), the only reading it can have. Seeds are integers >= 0; the
threshold is a number in [0, 1]; ``params`` and ``grid`` are mappings, each grid axis a
non-empty list, a parameter in one of them only; every parameter combination is checked by
the method (``hmtc_bench.methods.params``: type, range or choices) and kept as converted.
YAML is read with numbers such as ``1e-3`` as numbers (PyYAML alone reads them as strings).

A cell is one (dataset, method, parameters, seed, decoding policy). Each finished cell is a
run in the store; a failing fit is recorded as failed with its error and the grid goes on.
Rerun after an interruption, the grid skips every cell that already has a finished run of
the same identity (``hmtc_bench.record``: resolved parameters, dataset and hierarchy hashes,
seed, policy, threshold), so nothing finished is repeated.
"""

from __future__ import annotations

import itertools
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hmtc_bench.data.dataset import DataError
from hmtc_bench.tracking import Store

GRID_KEYS = {"name", "datasets", "seeds", "decode", "threshold", "methods", "description",
             "split_seed"}
METHOD_KEYS = {"method", "params", "grid", "datasets", "space"}


@dataclass
class Grid:
    name: str
    datasets: list[str]
    seeds: list[int]
    decode: list[str]
    threshold: float
    # expanded (name, params, datasets it runs on or None for all)
    methods: list[tuple[str, dict, list[str] | None]] = field(default_factory=list)
    # resampled splits: None (each corpus's own split), "same" (split seed = the cell's
    # seed) or one seed for every cell; corpora with a fixed split keep it
    split_seed: int | str | None = None
    # per entry of ``methods``: the search space its grid file gives (None: the method's)
    spaces: list[dict | None] = field(default_factory=list)

    def pairs(self) -> list[tuple[str, str, dict]]:
        """(dataset, method, params) of every configuration, datasets in grid order."""
        return [(d, name, params) for d in self.datasets for name, params, only in self.methods
                if only is None or d in only]

    def tuning_pairs(self) -> list[tuple[str, str, dict, dict | None]]:
        """(dataset, method, params, search space or None) of every configuration."""
        spaces = self.spaces or [None] * len(self.methods)
        return [(d, name, params, space) for d in self.datasets
                for (name, params, only), space in zip(self.methods, spaces)
                if only is None or d in only]

    @property
    def n_cells(self) -> int:
        return len(self.pairs()) * len(self.seeds) * len(self.decode)


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file (shapes, names, seeds, threshold and every method
    parameter, before any data is loaded); errors name the file and the entry."""
    import yaml

    from hmtc_bench.errors import ParameterError
    from hmtc_bench.evaluation.decoding import parse_policy
    from hmtc_bench.methods import method_names
    from hmtc_bench.methods.params import SEED, THRESHOLD, load_yaml, show
    from hmtc_bench.plugins import unknown
    path = Path(path)
    try:
        spec = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such grid file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise DataError(f"{path}{where}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(spec, dict):
        raise DataError(f"{path}: a grid is a mapping with keys {sorted(GRID_KEYS)}")
    extra = set(spec) - GRID_KEYS
    if extra:
        raise DataError(f"{path}: unknown keys {sorted(extra)}; known: {sorted(GRID_KEYS)}")

    def fail(where: str, problem: str):
        raise DataError(f"{path}: {where}{problem}")

    def a_list(value, where: str, example: str, scalar_ok: bool = False) -> list:
        """``value`` as a non-empty list; a scalar is one item where ``scalar_ok``."""
        if scalar_ok and isinstance(value, (str, int, float)):
            return [value]
        if not isinstance(value, list) or not value:
            got = "nothing" if value is None else repr(value)
            fail(where, f" must be a non-empty list (got {got}), e.g. {example}")
        return value

    def names(value, where: str, example: str) -> list[str]:
        items = a_list(value, where, example)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item):
                fail(where, f" must list names or folders; got {show(item)}")
        return [str(item) for item in items]

    if not isinstance(spec.get("name", ""), (str, int, float)):
        fail("'name'", " must be a string")
    datasets = names(spec.get("datasets"), "'datasets'", "datasets: [synthetic]")
    seeds = []
    for value in a_list(spec.get("seeds", [0]), "'seeds'", "seeds: [0, 1, 2]", scalar_ok=True):
        try:
            seeds.append(SEED.check(value))
        except ValueError as err:
            fail("'seeds'", f" entry {show(value)}: {err}")
    decode = a_list(spec.get("decode", ["threshold"]), "'decode'", "decode: [threshold]",
                    scalar_ok=True)
    for policy in decode:
        try:
            parse_policy(policy)
        except ParameterError as err:
            raise DataError(f"{path}: {err}") from None
    try:
        threshold = float(THRESHOLD.check(spec.get("threshold", 0.5)))
    except ValueError as err:
        fail(f"threshold {show(spec.get('threshold'))}", f": {err}")
    try:
        split_seed = check_split_seed(spec.get("split_seed"))
    except ValueError as err:
        fail(f"split_seed {show(spec.get('split_seed'))}", f": {err}")
    known = method_names()
    methods, spaces = [], []
    entries = a_list(spec.get("methods"), "'methods'", "methods: [flat-svm]")
    for i, entry in enumerate(entries, start=1):
        if isinstance(entry, str):
            entry = {"method": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("method"), str):
            raise DataError(f"{path}: methods entry {i} needs a 'method' name")
        where = f"methods entry {i} ({entry['method']})"
        if set(entry) - METHOD_KEYS:
            fail(where, f": unknown keys {sorted(set(entry) - METHOD_KEYS, key=str)}; known: "
                        f"{sorted(METHOD_KEYS)}")
        if entry["method"] not in known:
            problem = unknown("method", entry["method"], known)
            raise DataError(f"{path}: methods entry {i}: {problem}")
        fixed = entry.get("params") or {}
        axes = entry.get("grid") or {}
        for key, value in (("params", fixed), ("grid", axes)):
            if not isinstance(value, dict):
                fail(f"{where}: '{key}'", f" must be a mapping of parameter names to "
                     f"{'values' if key == 'params' else 'lists of values'}, e.g. "
                     f"{key}: {{C: {'1.0' if key == 'params' else '[0.5, 1.0]'}}} "
                     f"(got {show(value)})")
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                fail(where, f": grid axis {key!r} must be a non-empty list")
        both = sorted(set(fixed) & set(axes), key=str)
        if both:
            fail(where, f": parameter(s) {', '.join(map(repr, both))} in both 'params' and "
                        "'grid'; give each in one of them")
        only = entry.get("datasets")
        if only is not None:
            only = names(only, f"{where}: 'datasets'", "datasets: [synthetic]")
            missing = set(only) - set(datasets)
            if missing:
                fail(where, f": datasets {sorted(missing)} are not in the grid's datasets")
        space = _space(path, where, entry)
        for combo in itertools.product(*axes.values()):
            params = {**fixed, **dict(zip(axes, combo))}
            params = _check_params(path, i, entry["method"], params)
            if space is not None:
                _check_space(path, where, entry["method"], space, params)
            methods.append((entry["method"], params, only))
            spaces.append(space)
    return Grid(name=str(spec.get("name", path.stem)), datasets=datasets, seeds=seeds,
                decode=decode, threshold=threshold, methods=methods, split_seed=split_seed,
                spaces=spaces)


def _space(path, where: str, entry: dict) -> dict | None:
    """The entry's ``space`` read (``search_space.parse_dimension``), or None."""
    from hmtc_bench.errors import ParameterError
    from hmtc_bench.methods.search_space import parse_dimension
    if "space" not in entry:
        return None
    raw = entry["space"]
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: {where}: 'space' must be a non-empty mapping of parameter "
                        "names to ranges or lists, e.g. space: {C: {low: 0.01, high: 100, "
                        "log: true}}")
    try:
        space = {str(k): parse_dimension(v, f"space {k!r}") for k, v in raw.items()}
    except ParameterError as err:
        raise DataError(f"{path}: {where}: {err}") from None
    return {k: v for k, v in space.items() if v is not None}


def _check_space(path, where: str, method: str, space: dict, params: dict) -> None:
    from hmtc_bench.errors import ParameterError
    from hmtc_bench.methods import inspect_method
    from hmtc_bench.methods.search_space import check_space
    cls = inspect_method(method).cls
    if cls is None:
        return
    try:
        check_space(method, cls, space, params)
    except ParameterError as err:
        raise DataError(f"{path}: {where}: {err}") from None


def check_split_seed(value) -> int | str | None:
    """A split seed option: None, "same" (the cell's seed) or a whole number >= 0."""
    if value is None or value == "same":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise ValueError("must be 'same' (each cell's seed) or a whole number >= 0")
    return value


def resolve_split_seed(option, seed: int) -> int | None:
    return seed if option == "same" else option


def _check_params(path, i, name, params) -> dict:
    """``params`` of methods entry ``i`` checked (and converted, e.g. ``"1e-3"`` -> 0.001) by
    the method's ``set_params``, as they will be when the grid runs."""
    from hmtc_bench.methods import inspect_method
    from hmtc_bench.methods.params import InvalidParameterError
    cls = inspect_method(name).cls
    if cls is None:  # a plugin that fails to import: reported as unavailable when run
        return params
    try:
        method = cls().set_params(**params)
    except InvalidParameterError as err:
        raise DataError(f"{path}: methods entry {i} ({name}){err.problem}") from None
    checked = method.get_params()
    return {key: checked[key] for key in params}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_grid(grid: Grid, store: Store | None = None, quiet: bool = False,
             dry_run: bool = False, strict: bool = False, dag: bool = False,
             executor=None, log_model: bool = False) -> dict:
    """Run every unfinished cell, logging to ``store`` (default: ``Store()``); returns counts
    of finished, skipped (finished before, or by another process) and failed cells.
    ``dry_run``: run nothing, list and count the cells still to run. ``strict`` and ``dag``
    are passed to ``load_dataset``. ``executor``: an ``executors.ExecutorOptions`` (default
    serial: the cells one after another in this process); the others plan every cell here
    and run them on worker processes or a Ray cluster (``hmtc_bench.executors``).
    ``log_model``: each run also gets its fitted model (``runner.run_decodings``).
    Work that depends only on the data (TF-IDF matrices, token ids, frozen encoder states)
    is computed once and shared by the cells (``hmtc_bench.shared_work``; on a parallel
    executor, once per worker)."""
    from hmtc_bench import shared_work
    with shared_work.scope():
        return _run_grid(grid, store, quiet, dry_run, strict, dag, executor, log_model)


def _run_grid(grid, store, quiet, dry_run, strict, dag, executor, log_model) -> dict:
    from hmtc_bench.executors import ExecutorOptions
    from hmtc_bench.data import load_dataset
    from hmtc_bench.errors import StoreError
    from hmtc_bench.methods import inspect_method
    from hmtc_bench.record import RunRecord
    from hmtc_bench.runner import CellTaken, run_decodings
    say = (lambda m: None) if quiet else _say
    store = store or Store()
    options = (executor or ExecutorOptions()).check(store.uri)
    parallel = options.executor != "serial" and not dry_run
    store.check()  # before any data is loaded
    cells, claims = [], {}
    run_id = uuid.uuid4().hex[:16]   # this run of the grid: its tasks' claim tokens
    done = store.finished_cells()
    counts = ({"to run": 0, "skipped": 0, "unavailable": 0} if dry_run else
              {"finished": 0, "skipped": 0, "failed": 0, "unavailable": 0})
    total = grid.n_cells
    position = 0
    started = time.perf_counter()
    loaded: dict[tuple, object] = {}
    hashes: dict[int, tuple[str, str]] = {}
    infos: dict[str, object] = {}
    for (dataset_name, method, params), seed in itertools.product(grid.pairs(), grid.seeds):
        wanted = resolve_split_seed(grid.split_seed, seed)
        if (dataset_name, None) not in loaded:
            loaded.clear()  # one corpus in memory at a time (pairs are in dataset order)
            hashes.clear()
            loaded[dataset_name, None] = load_dataset(dataset_name, strict=strict, dag=dag)
        split_seed = wanted if loaded[dataset_name, None].split_seed is not None else None
        if (dataset_name, split_seed) not in loaded:
            loaded[dataset_name, split_seed] = load_dataset(dataset_name, strict=strict,
                                                            dag=dag, seed=split_seed)
        data = loaded[dataset_name, split_seed]
        if id(data) not in hashes:
            hashes[id(data)] = (data.content_hash,
                                data.corpus_hash if split_seed is not None else None)
        content_hash, corpus_hash = hashes[id(data)]
        label = f"{method} {params or ''} seed={seed} on {data.name}".replace("  ", " ")
        if split_seed is not None:
            label += f" (split seed {split_seed})"
        if method not in infos:  # one entry-point scan per method, not per cell
            infos[method] = inspect_method(method)
        info = infos[method]
        if not info.available:
            counts["unavailable"] += len(grid.decode)
            position += len(grid.decode)
            say(f"[{position}/{total}] {label}: unavailable ({info.reason})")
            continue
        estimator = info.build(params, seed)
        todo = [p for p in grid.decode if RunRecord(
            method, data.name, seed, p, grid.threshold, estimator.get_params(),
            content_hash, data.hierarchy.content_hash,
            identity_omits=estimator.omitted_params(), split_seed=split_seed,
            corpus_hash=corpus_hash).cell_key not in done]
        skipped = len(grid.decode) - len(todo)
        counts["skipped"] += skipped
        position += skipped
        if not todo:
            say(f"[{position}/{total}] {label}: already finished, skipped")
            continue
        if dry_run:
            counts["to run"] += len(todo)
            position += len(todo)
            say(f"[{position}/{total}] {label}: to run ({', '.join(todo)})")
            continue
        if parallel:
            cell = _cell(len(cells), dataset_name, info, estimator, seed, params, todo, grid,
                         split_seed, strict, dag, log_model, label, store, options, run_id)
            if options.results == "driver":
                from hmtc_bench.runner import new_records
                claims[cell.index] = new_records(info, estimator, data, seed, todo,
                                                 grid.threshold, split_seed)
            cells.append(cell)
            continue
        say(f"[{position + 1}/{total}] {label}: fitting ({', '.join(todo)}) ...")
        try:
            records = run_decodings(info, data, seed, params, todo, grid.threshold, store,
                                    quiet=True, claim=True, show_progress=not quiet,
                                    split_seed=split_seed, log_model=log_model)
        except CellTaken:
            counts["skipped"] += len(todo)
            position += len(todo)
            say(f"[{position}/{total}] {label}: claimed or finished by another process, skipped")
            continue
        except (KeyboardInterrupt, StoreError):
            raise
        except Exception as err:  # recorded as failed by the runner; the grid goes on
            counts["failed"] += len(todo)
            position += len(todo)
            say(f"[{position}/{total}] {label}: FAILED ({type(err).__name__}: {err})")
            continue
        counts["finished"] += len(records)
        position += len(records)
        scores = ", ".join(f"{r.decode} micro {r.metrics['micro_f1']:.4f}" for r in records)
        elapsed = time.perf_counter() - started
        say(f"[{position}/{total}] {label}: {scores} (fit {records[0].fit_seconds:.1f} s;"
            f" grid {elapsed / 60:.1f} min)")
    if parallel and cells:
        from hmtc_bench.executors import run_cells
        loaded.clear()
        counts["total"] = total
        run_cells(cells, store, options, claims, counts, say, show_progress=not quiet)
        counts.pop("total")
    return counts


def _cell(index, dataset_name, info, estimator, seed, params, todo, grid, split_seed, strict,
          dag, log_model, label, store, options, run_id):
    """The task of one fit for a parallel executor: names and values only, a dataset folder
    as an absolute path (workers do not share the driver's working folder)."""
    from hmtc_bench.data import list_datasets
    from hmtc_bench.executors.cells import Cell
    dataset = dataset_name if dataset_name in list_datasets() else \
        str(Path(dataset_name).resolve())
    return Cell(index=index, dataset=dataset, method=info.name, params=dict(params),
                seed=seed, policies=list(todo), threshold=grid.threshold,
                split_seed=split_seed, strict=strict, dag=dag, log_model=log_model,
                store_uri=store.uri if options.results == "worker" else None,
                label=label, resources=estimator.resources(), token=f"{run_id}:{index}")
