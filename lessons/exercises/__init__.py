"""Checkers for the lessons' "your turn" cells, one module per lesson (``lesson01.py``, ...).

A checker runs the reader's function on cases of its own, compares it with minivrnn's components (or a
finite-difference gradient), and prints what is right and, for what is wrong, where: which output, which
entries, by how much. It never raises on a wrong or unfinished answer (the notebook must still run top to
bottom); it returns True or False so that a lesson can say more. Solutions live apart, in
``lessons/solutions/``: read them after trying.
"""
