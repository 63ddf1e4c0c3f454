"""Kill training or synthesis with SIGKILL at random moments, resume, and check the files.

    python tools/fault_injection.py train --kills 20 [--seed 0] [--work-dir DIR]
    python tools/fault_injection.py synthesize --kills 20 [--seed 0] [--work-dir DIR]
    python tools/fault_injection.py record [--kills 5] [--seed 0] [--work-dir DIR]

``train`` runs tools/train.py on a tiny distillation config (the shipped CIFAR-10
subset) and resumes it with ``--resume`` after every kill; ``synthesize`` runs
tools/synthesize.py with a tiny teacher and runs it again after every kill. Every
checkpoint must load (``weights_only=True``), every resume must start from the latest
complete checkpoint, and the synthetic set must end with every requested image exactly
once. ``record`` runs tools/record_teacher.py with a tiny teacher and runs it again after
every kill: at the end no chunk may be missing or marked twice, and every value must equal
that of a record made without kills. Prints a line per kill and a summary; the exit code is 1 on any failure.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Fault injection with kill -9')
    parser.add_argument('what', choices=['train', 'synthesize', 'record'])
    parser.add_argument('--kills', type=int,
                        help='how many times to kill (default: 20; 5 for record)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the kill moments')
    parser.add_argument('--work-dir', help='default: work_dirs/fault_injection_<what>')
    parser.add_argument('--timeout', type=int, default=300,
                        help='seconds a single life may take before it counts as hung')
    args = parser.parse_args(argv)
    if args.kills is None:
        args.kills = 5 if args.what == 'record' else 20
    if args.kills < 0:
        parser.error(f'--kills must be >= 0, got {args.kills}')
    return args


def main(argv=None):
    args = parse_args(argv)
    from kdzoo.apis.fault_injection import (record_under_kills, synthesize_under_kills,
                                            train_under_kills)
    run = dict(train=train_under_kills, synthesize=synthesize_under_kills,
               record=record_under_kills)[args.what]
    work_dir = args.work_dir or osp.join('work_dirs', f'fault_injection_{args.what}')
    report = run(work_dir, kills=args.kills, seed=args.seed, timeout_s=args.timeout)
    for problem in report.problems:
        print(f'problem: {problem}')
    print(report.summary())
    return report


if __name__ == '__main__':
    sys.exit(0 if main().ok else 1)
