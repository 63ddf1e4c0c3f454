DESCRIPTION = 'the recorder runs the teacher in float32 whatever the run\'s precision'
FILE = 'kdzoo/apis/record_teacher.py'
FIND = '''        with torch.no_grad(), autocast_for(prepared.env_cfg.precision, device):
'''
REPLACE = '''        with torch.no_grad():
'''
TESTS = ['tests/test_teacher_record.py']
SELECT = 'runners_training_batches'
