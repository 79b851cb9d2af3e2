"""The nearest known word to a typo ("nosuidd" -> "nosuid"), for "did you mean" hints.

Not difflib: through heapq it reaches doctest, which the single binary leaves out.
"""


def distance(a, b):
    """Levenshtein distance (insertions, deletions, substitutions)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def nearest(word, candidates):
    """The candidate closest to ``word``, or None when none is close (at most a third of
    the word's letters differ)."""
    best, best_distance = None, None
    for candidate in sorted(candidates):
        d = distance(word.lower(), candidate.lower())
        if best_distance is None or d < best_distance:
            best, best_distance = candidate, d
    if best is None or best_distance > max(1, len(word) // 3):
        return None
    return best
