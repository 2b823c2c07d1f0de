"""The Evaluator: the only way from a model reference and settings to a :class:`Result`.

``score``, ``score_many``, table scoring, search fitness, ``--reg auto`` calibration and every
executor reach a score through :meth:`Evaluator.evaluate`; executors only move that call to
where it runs (see :mod:`swapprobe.runs` for the one run loop around it). A model is an ONNX
file/proto, a ``torch.nn.Module`` (exported to ONNX, or run directly with ``backend="torch"``),
or an architecture of a search space, always as a :class:`~swapprobe.models.ModelRef`.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from swapprobe import metrics
from swapprobe.data import Batch
from swapprobe.errors import DataError, SettingsError
from swapprobe.models import ModelRef, arch_ref, is_torch_module, resolve_one
from swapprobe.patterns import PatternMatrix
from swapprobe.proxies.gradients import check_interval, psi_by_bin
from swapprobe.results import Result, ScoreSettings

if TYPE_CHECKING:
    from swapprobe.capture.gradients import GradientPass
    from swapprobe.capture.runner import PatternRunner
    from swapprobe.searchspaces.base import SearchSpace

__all__ = ["Evaluator", "torch_seed"]


def torch_seed(seed: int, key: str) -> int:
    """The torch seed a network is built under: from the run's seed and the model's key alone,
    so that ``init="keep"`` scores the same weights in every process, order and executor."""
    return zlib.crc32(key.encode()) ^ seed


def _proxy_network_is_scoring_network(space: SearchSpace) -> bool:
    """Whether ``space`` keeps the default :meth:`SearchSpace.proxy_network` (its scoring
    network); a space that overrides it (DARTS) runs the proxies on another network."""
    from swapprobe.searchspaces.base import SearchSpace

    return type(space).proxy_network is SearchSpace.proxy_network


class Evaluator:
    """Scores models on one batch of data with one set of settings.

    Args:
        data: the inputs (see :func:`swapprobe.data.load_batch`); S = ``len(data.inputs)``.
        settings: see :class:`ScoreSettings`; ``settings.batch_size`` must equal S.
        on_repeat: called as ``on_repeat(done, total)`` after each repeat (progress bars).

    The Evaluator owns the cache of drawn weights its models share (the grouped pass draws
    the same chunks for every architecture of a space), for as long as it lives.
    """

    def __init__(
        self,
        data: Batch,
        settings: ScoreSettings | None = None,
        *,
        on_repeat: Callable[[int, int], None] | None = None,
    ) -> None:
        self.data = data
        self.settings = settings or ScoreSettings(batch_size=len(data.inputs))
        if len(data.inputs) != self.settings.batch_size:
            raise SettingsError(
                f"data has {len(data.inputs)} samples but the settings ask for S="
                f"{self.settings.batch_size}"
            )
        if self.settings.interval is not None:
            check_interval(self.settings.interval)
        if data.is_tokens and "vkdnw" in self.settings.gradient_proxies:
            raise SettingsError(
                "vkdnw's Fisher matrix needs the Jacobian of every vocabulary logit of a masked "
                "token (V of them, about 128 passes of the whole batch a model), which is not "
                "computed for token models; use zico or lswag"
            )
        self.on_repeat = on_repeat
        from swapprobe.capture.grouped import DrawCache

        self.draw_cache = DrawCache()

    # --- the entry point ----------------------------------------------------------------
    def evaluate(self, model: Any, *, name: str | None = None, key: str | None = None) -> Result:
        """Score one model: a :class:`ModelRef`, or anything :func:`resolve_one` accepts (an
        ONNX path or proto, a ``torch.nn.Module``, ``SPACE:ARCH``, ``(space, arch)``).

        ``name`` and ``key`` override the reference's report name and store key.
        """
        from swapprobe.capture.runner import open_runner

        ref = model if isinstance(model, ModelRef) else resolve_one(model, seed=self.settings.seed)
        start = time.perf_counter()
        if ref.space is not None:
            network = self._build_network(ref)
            param_count: int | None = ref.space.scoring_param_count(ref.arch)
            size_unit = ref.space.size_unit
        else:
            network = ref.load()
            param_count, size_unit = None, self.settings.size_unit
        runner = open_runner(
            network,
            self.data,
            self.settings,
            name=name or ref.name,
            draw_cache=self.draw_cache,
        )
        origin = runner.origin
        result = self._run(
            runner,
            name=name or ref.name,
            key=key or ref.key,
            param_count=origin.param_count if param_count is None else param_count,
            size_unit=size_unit,
        )
        if self.settings.pass_proxies:
            t0 = time.perf_counter()
            result.proxies = self._pass_proxies(ref, network)
            result.timings["proxies"] = time.perf_counter() - t0
        if settings_gradient := self.settings.gradient_proxies:
            t0 = time.perf_counter()
            self._gradient_proxies(ref, network, result, settings_gradient)
            result.timings["gradients"] = time.perf_counter() - t0
        result.seconds = time.perf_counter() - start
        result.metadata["model_sha256"] = origin.digest
        if ref.space is not None:
            result.metadata["architecture"] = ref.space.format(ref.arch)
        return result

    def evaluate_architecture(self, space: SearchSpace, arch: Hashable) -> Result:
        """Shorthand for ``evaluate(arch_ref(space, arch))``."""
        return self.evaluate(arch_ref(space, arch))

    def _build_network(self, ref: ModelRef) -> Any:
        """The architecture's scoring network, built under :func:`torch_seed` (the weights
        ``init="keep"`` scores; the caller's torch random state is left as it was)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed(self.settings.seed, ref.key))
            return ref.space.build_scoring_network(ref.arch)

    def _pass_proxies(self, ref: ModelRef, network: Any) -> dict[str, float]:
        """The torch-pass proxies of one model (AZ-NAS's protocol: Kaiming-normal weights, BN
        on batch statistics, Gaussian-noise inputs, all seeded). A
        search-space architecture runs on the space's proxy network and blocks; a torch module
        on a copy of itself with its top-level modules as blocks. ONNX files have no backward
        here, so they are refused. The batch is ``settings.proxy_batch`` noise images, or for
        token models the run's own first ``proxy_batch`` sequences (:meth:`_proxy_inputs`)."""
        import copy

        import torch

        from swapprobe.capture import proxy_pass

        settings = self.settings
        if ref.space is not None:
            if _proxy_network_is_scoring_network(ref.space) and settings.backend == "onnx":
                # The scoring network already built, under the same seed: the ONNX path only
                # read it, and the pass re-draws every weight it uses (Kaiming from its own
                # seed, over the same modules in the same order), so the values are those of
                # a fresh build without the cost of building it twice.
                module = network
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(torch_seed(settings.seed, ref.key))
                    module = ref.space.proxy_network(ref.arch)
            blocks = ref.space.proxy_blocks(module)
        elif is_torch_module(network):
            module = copy.deepcopy(network)
            blocks = list(module.children())
        else:
            raise SettingsError(
                # no name: the run's failure line starts with the model's name
                f"the proxies {', '.join(settings.pass_proxies)} need a backward "
                "pass, which swapprobe runs on torch modules and search-space architectures; "
                "score the ONNX file with SWAP alone (proxies none) or pass the torch module"
            )
        inputs = self._proxy_inputs()
        with torch.random.fork_rng(devices=[]):
            stats = proxy_pass.collect_block_stats(
                module,
                blocks,
                inputs,
                seed=torch_seed(settings.seed, ref.key) % 2**31,
                trainability="trainability" in settings.pass_proxies,
            )
        values = proxy_pass.proxy_values(stats)
        return {name: float(values[name]) for name in settings.pass_proxies}

    def _proxy_inputs(self) -> Any:
        """The torch pass's batch: ``proxy_batch`` Gaussian-noise images of the data's shape
        (AZ-NAS's inputs), or, token ids having no noise, the first ``proxy_batch`` sequences
        of the run's own ids (all S where S is smaller)."""
        import torch

        from swapprobe.capture import proxy_pass

        settings = self.settings
        if self.data.is_tokens:
            return torch.from_numpy(np.ascontiguousarray(self.data.inputs[: settings.proxy_batch]))
        return proxy_pass.gaussian_inputs(
            settings.proxy_batch, tuple(self.data.inputs.shape[1:]), seed=settings.seed
        )

    def _gradient_module(self, ref: ModelRef, network: Any, names: tuple[str, ...]) -> Any:
        """The network the gradient pass runs on: a search-space architecture's proxy network
        (built under :func:`torch_seed`), a copy of a torch module; both then get AZ-NAS's
        seeded Kaiming-normal weights, the initialisation the other torch-pass proxies use."""
        import copy

        import torch

        from swapprobe.capture import proxy_pass

        seed = torch_seed(self.settings.seed, ref.key)
        with torch.random.fork_rng(devices=[]):
            if ref.space is not None:
                torch.manual_seed(seed)
                # the classifier of the data's dataset: its labels need a logit per class
                dataset = self.data.dataset
                space = ref.space if dataset is None else ref.space.for_dataset(dataset)
                module = space.proxy_network(ref.arch)
            elif is_torch_module(network):
                module = copy.deepcopy(network)
            else:
                raise SettingsError(
                    f"{ref.name}: the proxies {', '.join(names)} need a backward pass, which "
                    "swapprobe runs on torch modules and search-space architectures; score the "
                    "ONNX file with SWAP alone (proxies none) or pass the torch module"
                )
            torch.manual_seed(seed % 2**31)
            proxy_pass.init_kaiming_normal(module)
        return module

    def gradient_batches(
        self, module: Any, seed: int, kind: str = "classification"
    ) -> list[tuple[Any, Any]]:
        """The labelled mini-batches of the gradient pass: ``gradient_batches`` disjoint
        batches of consecutive images of the run's own data, each ``proxy_batch`` large or
        ``S // gradient_batches`` where S is smaller (repeated images would have no variance
        across batches), with their labels where the batch has them (CIFAR), else seeded
        random labels over the network's outputs: ZiCo and Λ only need a task loss at
        initialisation. A head of another ``kind`` (dense prediction, regression) gets the
        targets :func:`swapprobe.capture.task_targets.task_targets` makes for it. Token ids
        get no labels: 15 % of each sequence is masked instead
        (:mod:`swapprobe.capture.masked_tokens`, drawn from ``seed``), the targets being the
        original ids at the masked positions."""
        import torch

        from swapprobe.capture.task_targets import task_targets

        settings = self.settings
        inputs = torch.from_numpy(np.ascontiguousarray(self.data.inputs))
        count = len(inputs)
        size = min(settings.proxy_batch, count // settings.gradient_batches)
        if size < 2:
            raise SettingsError(
                f"the gradient pass needs {settings.gradient_batches} mini-batches of at least "
                f"2 images; S = {count} is too small (raise the batch size)"
            )
        order = [
            torch.arange(i * size, (i + 1) * size) for i in range(settings.gradient_batches)
        ]
        if self.data.is_tokens:
            from swapprobe.capture.masked_tokens import mask_tokens

            masked, targets = mask_tokens(inputs, seed + 3)
            return [(masked[index], targets[index]) for index in order]
        labels = self.data.labels
        training = [(m, m.training) for m in module.modules()]
        module.eval()
        with torch.no_grad():
            shape = tuple(module(inputs[:1]).shape)
        for m, mode in training:
            m.training = mode
        if labels is not None and kind == "classification":
            classes = int(shape[-1])
            if int(np.max(labels)) >= classes:
                raise DataError(
                    f"the labels of {self.data.dataset or 'the data'} reach "
                    f"{int(np.max(labels))} but the network has {classes} outputs; the "
                    "labelled gradient pass (zico, lswag, vkdnw) needs a logit per class: "
                    "score on the space's own data or leave those proxies out"
                )
            targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        else:
            gen = torch.Generator().manual_seed(seed + 3)
            targets = task_targets(kind, inputs, (count, *shape[1:]), gen)
        return [(inputs[index], targets[index]) for index in order]

    def gradient_stats(
        self, ref: ModelRef, network: Any = None, *, fisher: bool = False
    ) -> GradientPass:
        """The labelled gradient pass of one model (:mod:`swapprobe.capture.gradients`) on
        :meth:`gradient_batches`, its weights AZ-NAS's seeded Kaiming draw: what the gradient
        proxies and ``swapprobe calibrate`` both read. The loss is the head's own
        (:mod:`swapprobe.capture.task_targets`: cross-entropy on the labels for a classifier),
        the masked-token loss (:mod:`swapprobe.capture.masked_tokens`) for token ids.
        ``network``: a torch module to copy (None for a search-space architecture). VKDNW's
        Fisher matrix (``fisher``) is a mean over the run's whole batch of S images, as the
        authors' over their loader's batch: a mini-batch of ``proxy_batch`` images would cap
        its rank at ``proxy_batch``·(C − 1)."""
        import torch

        from swapprobe.capture.gradients import gradient_pass
        from swapprobe.capture.task_targets import check_fisher, task_loss_fn

        names = self.settings.gradient_proxies or ("lswag",)
        kind = _head_kind(ref)
        if fisher:
            check_fisher(kind)
        module = self._gradient_module(ref, network, names)
        seed = torch_seed(self.settings.seed, ref.key) % 2**31
        batches = self.gradient_batches(module, seed, kind)
        if self.data.is_tokens:
            from swapprobe.capture.masked_tokens import masked_token_loss

            loss = masked_token_loss(module)
            return gradient_pass(module, batches, loss_fn=loss, seed=seed, fisher=fisher)
        # a regression target has its output's shape
        loss_fn = task_loss_fn(kind, batches[0][1].ndim)
        images = torch.from_numpy(np.ascontiguousarray(self.data.inputs)) if fisher else None
        return gradient_pass(
            module, batches, seed=seed, fisher=fisher, loss_fn=loss_fn, fisher_inputs=images
        )

    def _gradient_proxies(
        self, ref: ModelRef, network: Any, result: Result, names: tuple[str, ...]
    ) -> None:
        """ZiCo, L-SWAG (Λ, Ψ) and VKDNW of one model, stored on ``result`` with the per-layer
        statistics they come from."""
        from swapprobe.proxies.gradients import gradient_proxy_values

        found = self.gradient_stats(ref, network, fisher="vkdnw" in names)
        result.gradient_layers = found.layers
        result.fisher_eigenvalues = found.fisher_eigenvalues
        result.proxies.update(
            gradient_proxy_values(
                names,
                found.layers,
                psi=result.psi_by_bin,
                eigenvalues=found.fisher_eigenvalues,
                interval=self.settings.interval,
            )
        )
        result.metadata["interval"] = (
            None if self.settings.interval is None else list(self.settings.interval)
        )
        kind = _head_kind(ref)
        if self.data.is_tokens:
            result.metadata["gradient_labels"] = "masked tokens (15 %, seeded)"
        elif kind == "reconstruction":
            result.metadata["gradient_labels"] = "the input images (reconstruction)"
        elif kind != "classification":
            result.metadata["gradient_labels"] = f"random (seeded), {kind}"
        else:
            result.metadata["gradient_labels"] = (
                "data" if self.data.labels is not None else "random (seeded)"
            )

    # --- internals ----------------------------------------------------------------------
    def _run(
        self,
        runner: PatternRunner,
        *,
        name: str,
        key: str,
        param_count: int | None,
        size_unit: str,
    ) -> Result:
        """Run every repeat in the batches the runner asks for, and count each batch's
        patterns at once (:func:`metrics.scores_many` gives each matrix the numbers
        :func:`metrics.scores` gives it alone)."""
        settings = self.settings
        swaps = np.empty(settings.repeats)
        standard = np.empty(settings.repeats) if settings.baselines else None
        nwots = np.empty(settings.repeats) if settings.baselines else None
        kept: dict[int, PatternMatrix] = {}
        per_layer: dict[str, list[int]] = {}
        count_time = 0.0
        matrix: PatternMatrix | None = None
        psi: np.ndarray | None = None
        want_psi = any(name in ("lswag", "lswag-psi") for name in settings.gradient_proxies)
        done = 0
        for batch in runner.repeat_batches(settings.repeats):
            matrices = runner.run_all(self.data.inputs, seed=settings.seed, repeats=batch)
            t0 = time.perf_counter()
            counted = metrics.scores_many(matrices, baselines=settings.baselines)
            count_time += time.perf_counter() - t0
            for repeat, matrix, found in zip(batch, matrices, counted, strict=True):
                t0 = time.perf_counter()
                swaps[repeat] = found.swap
                if standard is not None and nwots is not None:
                    standard[repeat] = found.standard_ap
                    nwots[repeat] = found.nwot
                if settings.per_layer:
                    for info in matrix.layers:
                        per_layer.setdefault(info.name, []).append(
                            metrics.swap(matrix.layer(info.name))
                        )
                if want_psi and repeat == 0:
                    psi = psi_by_bin(matrix)
                count_time += time.perf_counter() - t0
                if settings.keep_patterns == "all" or (
                    settings.keep_patterns == "first" and repeat == 0
                ):
                    kept[repeat] = matrix
                done += 1
                if self.on_repeat is not None:
                    self.on_repeat(done, settings.repeats)
            del matrices
        assert matrix is not None
        assert param_count is not None
        timings = runner.timings.stages()
        timings["count"] = count_time
        return Result(
            name=name,
            key=key,
            swap_per_repeat=swaps,
            param_count=int(param_count),
            units=matrix.units,
            samples=matrix.samples,
            size_unit=size_unit,
            mu=settings.mu,
            sigma=settings.sigma,
            standard_ap_per_repeat=standard,
            nwot_per_repeat=nwots,
            timings=timings,
            layers=matrix.layers,
            patterns=kept,
            per_layer_swap={k: float(np.mean(v)) for k, v in per_layer.items()}
            if per_layer
            else None,
            psi_by_bin=psi,
            metadata={
                "backend": settings.backend,
                "provider": runner.provider,
                "device": runner.device,
                "init": settings.init,
                "seed": settings.seed,
                "data_fingerprint": self.data.fingerprint,
                "data_source": self.data.source,
                "passes": int(runner.passes),
                "activations": runner.activation_summary(),
            },
        )


def _head_kind(ref: ModelRef) -> str:
    """The kind of a model's head for the gradient pass's loss: the space's word for its
    architecture, a classifier for any other model."""
    return "classification" if ref.space is None else ref.space.task_loss(ref.arch)
