DESCRIPTION = ("building the teacher network draws from the run's generator, so an online run "
               "and a run from a record draw different drop-path and worker seeds")
FILE = 'kdzoo/models/distiller.py'
FIND = '''            with torch.random.fork_rng(devices=[]):
                self.teacher = MODELS.build(teacher)
'''
REPLACE = '''            if True:
                self.teacher = MODELS.build(teacher)
'''
TESTS = ['tests/test_offline_teacher.py']
SELECT = 'building_the_teacher'
