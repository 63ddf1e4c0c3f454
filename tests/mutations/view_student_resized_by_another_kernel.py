DESCRIPTION = ("with a larger view, the student's training image is resized by another kernel "
               "(antialiased torch) than its test pipeline's Resize")
FILE = 'kdzoo/datasets/views.py'
FIND = '''    resize = step_resize(step)
'''
REPLACE = '''    def resize(img, size):
        import torch.nn.functional as F
        if tuple(img.shape[-2:]) == tuple(size):
            return img
        out = F.interpolate(img[None].float(), size=tuple(size), mode='bilinear',
                            align_corners=False, antialias=True)[0]
        return out.round_().clamp_(0, 255).to(img.dtype)
'''
TESTS = ['tests/test_views.py']
SELECT = 'resized_as_its_test_pipeline'
