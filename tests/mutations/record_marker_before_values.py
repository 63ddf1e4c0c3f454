DESCRIPTION = "write_chunk marks a chunk done before its values are written"
FILE = 'kdzoo/records/teacher_record.py'
FIND = '''        h = self.header
        for name, values in encode(logits, h['kind'], h['k'], h['dtype']).items():
            array = self._map(epoch, name, 'r+')
            array[pos[0]:pos[-1] + 1] = values
            array.flush()
        marker = self.marker(epoch, chunk)
        if osp.isfile(marker):
            raise RuntimeError(f'{marker}: chunk written twice')
        _write_text(marker, '')
'''
REPLACE = '''        h = self.header
        marker = self.marker(epoch, chunk)
        if osp.isfile(marker):
            raise RuntimeError(f'{marker}: chunk written twice')
        _write_text(marker, '')
        for name, values in encode(logits, h['kind'], h['k'], h['dtype']).items():
            array = self._map(epoch, name, 'r+')
            array[pos[0]:pos[-1] + 1] = values
            array.flush()
'''
TESTS = ['tests/test_fault_injection.py']
SELECT = 'record_chunk_write_dying_halfway'
