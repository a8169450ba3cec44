"""A grid's studies (``hmtc-bench tune GRID --trials N``): one study per (dataset, method
entry) of a grid file (``hmtc_bench.tuning`` runs each), then the grid of the chosen
configurations refitted for the grid's seeds and decodings."""

from __future__ import annotations

import json

from hmtc_bench import progress
from hmtc_bench.errors import ParameterError
from hmtc_bench.tuning import METRICS, StudyResult, StudySpec, _show, run_study


def plan_studies(grid, trials: int, metric: str = "micro_f1",
                 defaults_first: bool = False) -> list[StudySpec]:
    """A study per (dataset, method entry) of ``grid``, in grid order; with
    ``defaults_first`` each study's trial 0 is the method's defaults of the searched
    parameters (refused when one lies outside its dimension)."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ParameterError(f"--trials {trials!r}: must be a whole number >= 1")
    if metric not in METRICS:
        raise ParameterError(f"--metric {metric!r}: choose one of {', '.join(METRICS)}")
    from hmtc_bench.methods import inspect_method
    from hmtc_bench.methods.search_space import check_space, space_of
    specs = []
    for dataset, method, params, space in grid.tuning_pairs():
        cls = inspect_method(method).cls
        searched = space_of(cls) if space is None else space
        searched = {k: v for k, v in searched.items() if k not in params or space is not None}
        check_space(method, cls, searched, params, where=grid.name)
        if not searched:
            raise ParameterError(f"{grid.name}: {method} has nothing to search (its search "
                                 "space is empty or fixed by params); give a 'space'")
        first = _defaults_in(method, cls, searched, grid.name) if defaults_first else None
        label = json.dumps(params, sort_keys=True, default=str) if params else ""
        name = f"{grid.name}/{method}{label}/{_dataset_label(dataset)}"
        specs.append(StudySpec(name=name, method=method, dataset=dataset, params=params,
                               space=searched, trials=trials, metric=metric,
                               threshold=grid.threshold, seed=grid.seeds[0], first=first))
    return specs


def _defaults_in(method: str, cls, space: dict, where: str) -> dict:
    """The defaults of ``cls`` for the parameters ``space`` searches."""
    defaults = cls().get_params()
    for name, dimension in space.items():
        if not dimension.contains(defaults[name]):
            raise ParameterError(f"{where}: {method}'s default {name}={defaults[name]!r} is "
                                 f"outside its search space {dimension.describe()}; widen "
                                 "the space or tune without --defaults-first")
    return {name: defaults[name] for name in space}


def _dataset_label(dataset: str) -> str:
    return dataset.rstrip("/").rsplit("/", 1)[-1]


def refit_grid(grid, results: list[StudyResult]):
    """The grid of the chosen configurations: each study's method with its chosen
    parameters on its dataset, for every seed and policy of ``grid``."""
    from hmtc_bench.grid import Grid
    chosen = [(r.spec.method, r.chosen_params, [r.spec.dataset]) for r in results
              if r.best is not None]
    return Grid(name=f"{grid.name}-tuned", datasets=list(grid.datasets), seeds=list(grid.seeds),
                decode=list(grid.decode), threshold=grid.threshold, methods=chosen,
                split_seed=grid.split_seed)


def trial_data(dataset: str, grid, seed: int, strict: bool = False, dag: bool = False):
    """The data a study's trials see: the corpus's own split, or for a grid of resampled
    splits the split of ``seed`` (the grid's first seed)."""
    from hmtc_bench.data import load_dataset
    from hmtc_bench.grid import resolve_split_seed
    data = load_dataset(dataset, strict=strict, dag=dag)
    wanted = resolve_split_seed(grid.split_seed, seed)
    if data.split_seed is not None and wanted is not None and wanted != data.split_seed:
        data = load_dataset(dataset, strict=strict, dag=dag, seed=wanted)
    return data


def tune_grid(grid, trials: int, store, metric: str = "micro_f1", quiet: bool = False,
              executor=None, refit: bool = True, strict: bool = False,
              dag: bool = False, defaults_first: bool = False
              ) -> tuple[list[StudyResult], dict | None]:
    """Every study of ``grid`` (``plan_studies``), then the refit of the chosen
    configurations (unless ``refit`` is false); returns the studies and the refit's counts."""
    from hmtc_bench.grid import run_grid
    specs = plan_studies(grid, trials, metric, defaults_first)
    store.check()       # before any data is loaded
    results = []
    loaded: dict = {}
    for spec in specs:
        if spec.dataset not in loaded:   # one corpus in memory at a time (grid order)
            loaded = {spec.dataset: trial_data(spec.dataset, grid, spec.seed, strict, dag)}
        from hmtc_bench.methods import inspect_method
        resources = inspect_method(spec.method).build(spec.params).resources()
        results.append(run_study(spec, loaded[spec.dataset], store, quiet=quiet,
                                 executor=executor, resources=resources))
        best = results[-1].best
        progress.say(f"{spec.name}: chose trial {best.number} (dev {metric} {best.value:.4f}): "
                     f"{_show(best.params)}" if best else f"{spec.name}: no trial finished",
                     not quiet)
    counts = None
    chosen = refit_grid(grid, results)
    if refit and chosen.methods:
        counts = run_grid(chosen, store, quiet=quiet, executor=executor, strict=strict, dag=dag)
    return results, counts
