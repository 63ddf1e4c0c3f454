"""Training throughput (images/s) and peak memory of any config, with and without the teacher.

    python tools/benchmark.py CONFIG [--batch-size 64] [--iters 20] [--warmup 3] [--amp]
                                     [--cfg-options KEY=VALUE ...]

Each variant (the full distiller, then the student alone with the teacher switched off)
runs the real training step (preprocessing, mixup/cutmix, forward, backward, optimizer) on
synthetic images of the config's resolution, so data loading is not measured. Variants
run in rounds, interleaved, in one process, so their ratio is measured side by side.
"""
import argparse
import resource
import statistics
import time

import torch
from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--batch-size', type=int, help='default: the config\'s batch size')
    parser.add_argument('--iters', type=int, default=20, help='timed steps per variant')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps per variant')
    parser.add_argument('--rounds', type=int, default=2, help='interleaved rounds')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def synthetic_batch(model, batch_size, size, num_classes):
    from mmpretrain.structures import DataSample
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (batch_size,))
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return dict(inputs=list(images), data_samples=samples)


def peak_memory_mb(device):
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def main(argv=None):
    args = parse_args(argv)
    from mmengine.optim import build_optim_wrapper

    from kdzoo.apis import build_model, load_config
    from kdzoo.models.distiller import input_size

    cfg = load_config(args.config, args.cfg_options)
    # Teacher weights do not change the cost.
    model = build_model(cfg, teacher_weights=False, device=args.device).train()
    if args.amp:
        cfg.optim_wrapper.type = 'kdzoo.AutocastOptimWrapper'
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    size = input_size(model.student)[-1]
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    data = synthetic_batch(model, batch_size, size, model.num_classes)

    variants = {'student alone': False}
    if getattr(model, 'distill_active', False):
        variants = {'with teacher': True, **variants}
    times = {name: [] for name in variants}
    peaks = {}
    for _ in range(args.rounds):
        for name, with_teacher in variants.items():
            if hasattr(model, 'set_stage'):
                model.set_stage(None if with_teacher else {})
            if args.device.startswith('cuda'):
                torch.cuda.reset_peak_memory_stats()
            for i in range(args.warmup + args.iters):
                if args.device.startswith('cuda'):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model.train_step(data, optim_wrapper)
                if args.device.startswith('cuda'):
                    torch.cuda.synchronize()
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks.get(name, 0.0), peak_memory_mb(args.device))

    print(f'{args.config}: batch {batch_size}, {size}x{size}, device {args.device}, '
          f'amp {args.amp}, threads {torch.get_num_threads()}')
    print(f"{'variant':<16}{'images/s':>12}{'s/step (median)':>18}{'peak memory (MB)':>20}")
    speed = {}
    for name in variants:
        med = statistics.median(times[name])
        speed[name] = batch_size / med
        print(f'{name:<16}{speed[name]:>12.1f}{med:>18.3f}{peaks[name]:>20.0f}')
    if len(variants) == 2:
        print(f"teacher overhead: student alone is {speed['student alone'] / speed['with teacher']:.2f}x "
              'as fast as with the teacher')
    if not args.device.startswith('cuda'):
        print('(CPU peak memory is the process peak RSS so far, so it can only grow across variants)')
    return speed


if __name__ == '__main__':
    main()
