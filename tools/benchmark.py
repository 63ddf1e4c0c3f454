"""Training throughput (images/s), s/step and peak memory of one or more configs, with and
without the teacher, measured side by side in one process.

    kdzoo benchmark CONFIG [CONFIG ...] [--batch-size 64] [--iters 20]
                          [--warmup 3] [--rounds 2] [--threads N] [--amp | --fp32] [--compile]
                          [--teacher-dtype float32] [--cfg-options KEY=VALUE ...]

Each variant (a distiller with its terms on, then its student alone with every term off
and the teacher not run; a plain classifier once) runs the real training step
(preprocessing, mixup/cutmix, forward, backward, optimizer) on synthetic images of the
config's resolution, so data loading is not measured. Precision: each config's
``env_cfg.precision`` ('auto': bf16 autocast on a CPU with AVX512-BF16/AMX-BF16 and on
GPUs with bf16), or ``--amp``/``--fp32`` for all. Variants run in interleaved rounds,
so their ratios (to the first row) are measured side by side. Teacher weights are not
loaded: they do not change the cost. On a GPU the student-alone rows also give the model
FLOPs utilisation: the model zoo's counted FLOPs (model-index.yml) of a training
step (3 forward passes) per second over the device's dense bf16 peak.

``--offline`` adds, for each distilled config, the step with ``teacher.logits`` read from
a teacher record (a temporary one; the teacher network is then not built), and two rows
for the recording itself: the teacher's forward pass on the preprocessed batch alone, and
with its outputs written as tools/record_teacher.py writes them (chunks of about 1024
views: encoded into memory-mapped arrays, flushed, marked done).
"""
import os.path as osp
import resource
import statistics
import time

import torch

from kdzoo.apis.tool_args import (add_cfg_options, add_config_argument, add_precision_flags,
                                  tool_parser)

EXAMPLES = ('kdzoo benchmark deit_s deit_s_distilled dearkd_s --batch-size 8 --threads 1',
            'kdzoo benchmark configs/deit/deit_micro_distilled_cifar10.py --amp',
            'kdzoo benchmark deit_s deit_s_distilled --batch-size 8 --threads 1 --offline')


def parse_args(argv=None):
    parser = tool_parser(__doc__.split('\n')[0], EXAMPLES)
    add_config_argument(parser, 'configs', nargs='+')
    parser.add_argument('--batch-size', type=int, help='default: each config\'s batch size')
    parser.add_argument('--iters', type=int, default=20, help='timed steps per variant and round')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps per variant and round')
    parser.add_argument('--rounds', type=int, default=2, help='interleaved rounds')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (CPU)')
    add_precision_flags(parser, 'every variant')
    parser.add_argument('--compile', action='store_true',
                        help='also measure every variant with the student and the teacher '
                        'compiled (torch.compile; the warm-up steps include compiling)')
    parser.add_argument('--teacher-dtype', choices=['config', 'float32', 'bfloat16'],
                        default='config', help="the teacher's precision: the config's (a "
                        "teacher without a bf16 key runs at the run's precision), or one for "
                        'every config')
    parser.add_argument('--offline', action='store_true',
                        help='also measure each distilled config trained from a teacher record '
                        '(model.teacher_outputs), and the teacher pass with and without '
                        "writing the record (tools/record_teacher.py's cost)")
    parser.add_argument('--peak-tflops', type=float, help="the device's dense bf16 peak, for "
                        'the model FLOPs utilisation on a GPU (default: known for H100/H200, '
                        'A100, L40S, L4, A10, V100)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    add_cfg_options(parser, help='applied to every config; KEY=VALUE as in kdzoo train')
    return parser.parse_args(argv)


#: Dense bf16 tensor peaks (TFLOP/s) of common accelerators, from their vendors' data
#: sheets; --peak-tflops gives any other.
BF16_PEAK_TFLOPS = {'H100': 989.4, 'H200': 989.4, 'A100': 312.0, 'L40S': 362.1, 'L4': 121.0,
                    'A10': 125.0, 'V100': 125.0}


def zoo_flops(config):
    """Multiply-accumulates per image of the config's student, as the model zoo counted
    them (the Metadata of model-index.yml's models), or None when the config is not in
    the zoo."""
    from kdzoo.apis import package_root
    from kdzoo.apis.model_index import zoo_models
    root = package_root()
    target = osp.realpath(config)
    for model in zoo_models(root):
        if osp.realpath(osp.join(root, model['Config'])) == target:
            return model.get('Metadata', {}).get('FLOPs')
    return None


def model_flops_utilisation(images_per_s, macs_per_image, peak_tflops):
    """Training FLOP/s over the peak: a step costs 3 forward passes (forward, and twice
    that for the backward) of 2 FLOPs per multiply-accumulate."""
    return images_per_s * 3 * 2 * macs_per_image / (peak_tflops * 1e12)


def device_name(device):
    """The GPU's name, or the CPU's model name (/proc/cpuinfo), for the header line."""
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    import platform
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'CPU'


def device_peak(device, given):
    if given:
        return given
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def synthetic_batch(batch_size, size, num_classes, views=None):
    """Random images and labels; ``views`` ({teacher network: (h, w)}) adds the teachers'
    views of the batch, as the replayable data path makes them."""
    from mmpretrain.structures import DataSample
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (batch_size,))
    # Replay keys (data seed, epoch, position, sample id), as ReplaySampler gives them: the
    # replayable preprocessor mixes by them and a teacher record is read by them.
    samples = [DataSample(metainfo=dict(replay=(0, 0, i, i), sample_idx=i)).set_gt_label(
        int(y)) for i, y in enumerate(labels)]
    data = dict(inputs=list(images), data_samples=samples)
    if views:
        data['views'] = {name: torch.randint(0, 256, (batch_size, 3, *hw), dtype=torch.uint8)
                         for name, hw in views.items()}
    return data


def peak_memory_mb(device):
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def prepare(config, args, compiled=False):
    """(model, optim wrapper, batch, {variant: stage}) of one config."""
    from mmengine.optim import build_optim_wrapper

    from kdzoo.apis import build_model, load_config
    from kdzoo.models.distiller import input_size
    from kdzoo.numerics import apply_precision
    cfg = load_config(config, args.cfg_options)
    if args.teacher_dtype != 'config':
        for teacher in [cfg.model.get('teacher')] + list((cfg.model.get('teachers') or
                                                          {}).values()):
            if teacher is not None:
                teacher.bf16 = args.teacher_dtype == 'bfloat16'
    # --cfg-options model.compile=... sets the compile arguments of the compiled variant.
    cfg.model.compile = (cfg.model.get('compile') or True) if compiled else False
    model = build_model(cfg, teacher_weights=False, device=args.device).train()
    precision = apply_precision(cfg, args.device, args.amp, args.fp32)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    views = {network: t.view for network, t in getattr(model, '_teacher_modules', dict)().items()
             if getattr(t, 'view', None) is not None}
    data = synthetic_batch(batch_size, input_size(model.student)[-1], model.num_classes, views)
    variants = {'student alone': {}}
    if getattr(model, 'distill_active', False):
        variants = {'with teacher': None, **variants}
    return model, optim_wrapper, data, variants, precision


#: Positions per chunk of the record written by ``--offline`` (tools/record_teacher.py's
#: default): the done marker, and its fsync, come once per chunk.
RECORD_CHUNK = 1024


def benchmark_record(model, data):
    """A complete teacher record in a temporary folder with one epoch of views (random
    logits: the values do not change the cost); the batch reads its first positions."""
    import tempfile

    from kdzoo.records import TeacherRecord
    n, k = len(data['inputs']), model.num_classes
    kind = 'logits' if k <= 100 else 'topk'
    chunk = max(1, RECORD_CHUNK // n) * n
    folder = tempfile.mkdtemp(prefix='kdzoo_benchmark_record_')
    record = TeacherRecord.create(folder, dict(benchmark=True), epochs=1, positions=chunk,
                                  num_classes=k, kind=kind, k=10 if kind == 'topk' else None,
                                  chunk=chunk)
    record.make_files()
    record.write_chunk(0, 0, torch.randn(chunk, k))
    record.finish()
    return folder, record


def offline_steps(config, args, model, optim_wrapper, data):
    """{variant: step function} of ``--offline`` for a distilled config: training from a
    record, the teacher pass, the teacher pass written as a record chunk."""
    import os

    from mmengine.optim import build_optim_wrapper

    from kdzoo.apis import build_model, load_config
    from kdzoo.numerics import apply_precision, autocast_for
    folder, record = benchmark_record(model, data)
    cfg = load_config(config, args.cfg_options)
    cfg.model.teacher_outputs = folder
    cfg.model.compile = False
    offline = build_model(cfg, teacher_weights=False, device=args.device).train()
    precision = apply_precision(cfg, args.device, args.amp, args.fp32)
    offline_optim = build_optim_wrapper(offline, cfg.optim_wrapper)
    marker = record.marker(0, 0)
    pending = []  # the chunk's outputs so far, written when it is full

    def from_record():
        offline.train_step(data, offline_optim)

    @torch.no_grad()
    def teacher_pass(write=False):
        with autocast_for(precision, args.device):  # the teacher at the run's precision
            batch = model.data_preprocessor(data, True)
            logits = model.teacher_logits(batch['inputs'])
        if write:
            pending.append(logits)
            if sum(len(x) for x in pending) == record.chunk:
                os.remove(marker)  # the same chunk again, as a new one
                record.write_chunk(0, 0, torch.cat(pending))
                pending.clear()

    return {'from a record': from_record, 'teacher pass': teacher_pass,
            'teacher pass + record write': lambda: teacher_pass(write=True)}


def _with_stage(model, stage, step):
    def run():
        if hasattr(model, 'set_stage'):
            model.set_stage(stage)
        step()
    return run


def _train_step(model, optim_wrapper, data, stage):
    return _with_stage(model, stage, lambda: model.train_step(data, optim_wrapper))


def main(argv=None):
    args = parse_args(argv)
    from kdzoo.numerics import denormals_flushed, flush_denormals
    flush_denormals()  # before the intra-op threads start; each config's build applies its own
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = {}
    flops = {}
    precisions = {}
    for config in args.configs:
        for compiled in (False, True) if args.compile else (False,):
            model, optim_wrapper, data, variants, precision = prepare(config, args, compiled)
            precisions[osp.splitext(osp.basename(config))[0]] = precision
            name = osp.splitext(osp.basename(config))[0]
            steps = {}
            for variant, stage in variants.items():
                steps[variant] = (_train_step(model, optim_wrapper, data, stage), variant
                                  == 'student alone')
            if args.offline and not compiled and 'with teacher' in variants:
                for variant, step in offline_steps(config, args, model, optim_wrapper,
                                                   data).items():
                    steps[variant] = (_with_stage(model, None, step), False)
            for variant, (step, alone) in steps.items():
                key = variant if len(args.configs) == 1 else f'{name}: {variant}'
                key += ', compiled' if compiled else ''
                runs[key] = (step, len(data['inputs']))
                # The student's own FLOPs: the utilisation of the student alone.
                flops[key] = zoo_flops(config) if alone else None
    cuda = args.device.startswith('cuda')
    times = {key: [] for key in runs}
    peaks = {}
    for _ in range(args.rounds):
        for key, (step, _) in runs.items():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            for i in range(args.warmup + args.iters):
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                step()
                if cuda:
                    torch.cuda.synchronize()
                if i >= args.warmup:
                    times[key].append(time.perf_counter() - start)
            peaks[key] = max(peaks.get(key, 0.0), peak_memory_mb(args.device))

    kinds = sorted(set(precisions.values()))
    precision = kinds[0] if len(kinds) == 1 else ', '.join(f'{k} {v}' for k, v in
                                                          precisions.items())
    print(f"{', '.join(args.configs)}: device {args.device} ({device_name(args.device)}), "
          f"precision {precision}, threads "
          f"{torch.get_num_threads()}, subnormals flushed {denormals_flushed()}, "
          f"{args.iters} x {args.rounds} timed steps per variant")
    width = max(len(k) for k in runs) + 2
    peak = device_peak(args.device, args.peak_tflops) if cuda else None
    print(f"{'variant':<{width}}{'batch':>6}{'images/s':>11}{'s/step (median)':>17}"
          f"{'ratio':>8}{'peak memory (MB)':>19}" + (f"{'MFU':>8}" if peak else ''))
    speed = {}
    first = None
    for key, (_, batch) in runs.items():
        med = statistics.median(times[key])
        first = first or med
        speed[key] = batch / med
        mfu = ''
        if peak:
            mfu = (f'{100 * model_flops_utilisation(speed[key], flops[key], peak):>7.1f}%'
                   if flops[key] else f"{'-':>8}")
        print(f'{key:<{width}}{batch:>6}{speed[key]:>11.1f}{med:>17.3f}{med / first:>8.2f}'
              f'{peaks[key]:>19.0f}{mfu}')
    if len(args.configs) == 1 and {'with teacher', 'student alone'} <= set(runs):
        print(f"teacher overhead: student alone is "
              f"{speed['student alone'] / speed['with teacher']:.2f}x as fast as with the teacher")
    for key in runs:
        if key.endswith('from a record'):
            alone = key.replace('from a record', 'student alone')
            print(f'{key}: {speed[alone] / speed[key]:.3f}x the student alone')
        if key.endswith('teacher pass + record write'):
            plain = key.replace(' + record write', '')
            print(f'{key}: {speed[plain] / speed[key]:.3f}x the teacher pass alone')
    if not cuda:
        print('(CPU peak memory is the process peak RSS so far, so it can only grow across '
              'variants)')
    return speed


if __name__ == '__main__':
    main()
