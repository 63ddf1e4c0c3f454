from .shards import (ShardWriter, balanced_labels, merge_manifests, num_shards, run_shards,
                     save_grid, shards_of_rank)
from .synthesizer import DeepInversionSynthesizer, SynthesisResult, batch_seed, check_stages

__all__ = ['DeepInversionSynthesizer', 'ShardWriter', 'SynthesisResult', 'balanced_labels',
           'batch_seed', 'check_stages', 'merge_manifests', 'num_shards', 'run_shards',
           'save_grid', 'shards_of_rank']
