"""Many apps in one process: the runner (:mod:`kiln.many.runner`), the progress display
(:mod:`kiln.many.progress`) and the multi-app outputs of ``kiln render`` (:mod:`kiln.many.output`).
"""
