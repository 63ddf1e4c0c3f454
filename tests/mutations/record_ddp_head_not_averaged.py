DESCRIPTION = "DistillerDDP leaves the student's heads out of DDP, as it does the teacher"
FILE = 'kdzoo/engine/ddp.py'
FIND = '''        teacher = getattr(module, 'teacher', None)
        if teacher is not None:
'''
REPLACE = '''        self._set_params_and_buffers_to_ignore_for_model(
            module, [n for n, _ in module.named_parameters() if '.head' in n])
        teacher = getattr(module, 'teacher', None)
        if teacher is not None:
'''
TESTS = ['tests/test_record_ddp.py']
SELECT = 'two_processes'
