# Runtime shared by every kdzoo config (mmengine conventions).
default_scope = 'kdzoo'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook, with files that a killed run never leaves half-written.
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Keyed, so that a child config overrides or removes (None) any of them by name; a
    # distiller with stages adds distill_stage=dict(type='DistillStageHook', ...).
    progress_bar=dict(type='ProgressBarHook'),
    # The data's class count against the model's, before the first step.
    data_check=dict(type='DataCheckHook'),
    # An offline teacher's record (model.teacher_outputs) checked against the run, before it.
    teacher_record=dict(type='TeacherRecordHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    # bf16 autocast or float32 (training, testing, synthesis): 'fp32', 'bf16' or 'auto' (bf16
    # on GPUs with bf16 and CPUs with AVX512-BF16/AMX-BF16); --amp/--fp32 override it. The
    # CPU flushes subnormal floats unless flush_denormal=False (kdzoo/numerics.py).
    precision='auto',
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
# Works on GPU (NCCL) and CPU (gloo); the teacher is kept out of DDP, and unused
# parameters are looked for only when a switched-off term can leave some (connectors).
model_wrapper_cfg = dict(type='kdzoo.DistillerDDP')

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True, window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
