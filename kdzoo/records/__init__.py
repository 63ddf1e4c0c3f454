"""Teacher records: a teacher's outputs on the replayed views of a run, stored once."""
from .fingerprint import run_fingerprint
from .teacher_record import (OUTPUT_KINDS, RecordError, TeacherRecord, record_bytes,
                             human_bytes)

__all__ = ['OUTPUT_KINDS', 'RecordError', 'TeacherRecord', 'human_bytes', 'record_bytes',
           'run_fingerprint']
