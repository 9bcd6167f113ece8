"""Generated multiple-choice questions: the Coral workflow's built-in dataset.

MMLU-Pro is not available offline, so the default run uses questions composed from
templates written for slurmgen: arithmetic, unit conversions and logic (number
sequences, ordering puzzles, conditional reasoning, counting). Each has 4 to 10
options (MMLU-Pro has up to 10), exactly one correct, and the rows have MMLU-Pro's
shape: ``question_id``, ``question``, ``options``, ``answer`` (a letter), plus
``answer_index``, ``category`` and ``src``.

The correct option is placed at ``gold_position(options)``, a hash of the option
texts that ignores their order. The simulator's content script uses the same
function as its "knowledge" of the right answer, so the scripted agents can be
right or wrong on purpose; over any other dataset the script's guess is right only
by chance. Everything is drawn from ``random.Random`` seeded per question: the same
seed gives the same questions, byte for byte.
"""

from __future__ import annotations

import hashlib
import math
import random
import string
from collections.abc import Callable, Sequence

MIN_OPTIONS = 4
MAX_OPTIONS = 10
LETTERS = string.ascii_uppercase

Generated = tuple[str, str, list[str], str]  # question, correct option, distractors, category


def gold_position(options: Sequence[str]) -> int:
    """Where the correct option goes among ``options`` (independent of their order)."""
    joined = "\x1f".join(sorted(o.strip() for o in options))
    digest = hashlib.sha256(joined.encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(options)


def fmt(x: float) -> str:
    """A number as a person writes it: no trailing zeros, at most 4 decimals."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.4f}".rstrip("0").rstrip(".")


def _near_numbers(rng: random.Random, correct: float, extra: Sequence[float], want: int) -> list[str]:
    """Distractors for a numeric answer: the typical slips given, then nearby values."""
    right = fmt(correct)
    pool: list[str] = []
    for value in extra:
        text = fmt(value)
        if text != right and text not in pool and value >= 0:
            pool.append(text)
    step = max(1, abs(int(correct)) // 20)
    reachable = {fmt(correct + sign * step * k) for sign in (-1, 1) for k in range(1, 13)}
    floor = 0.0 if len({t for t in reachable if float(t) >= 0} - set(pool)) >= want - len(pool) else -math.inf
    while len(pool) < want:  # a negative answer far below 0 has too few non-negative neighbours: allow negatives
        value = correct + rng.choice([-1, 1]) * step * rng.randint(1, 12)
        text = fmt(value)
        if text != right and text not in pool and value >= floor:
            pool.append(text)
    return pool


# ---------------------------------------------------------------------------
# arithmetic


def _product(rng: random.Random) -> Generated:
    a, b = rng.randint(12, 99), rng.randint(12, 99)
    c = a * b
    slips = [c + 10, c - 10, c + 1, c - 1, a * (b + 1), (a + 1) * b, a * (b - 1), c + 100, c - 100,
             int(str(c)[::-1]), a + b]
    return f"What is {a} x {b}?", fmt(c), _near_numbers(rng, c, slips, MAX_OPTIONS), "arithmetic"


def _sum_difference(rng: random.Random) -> Generated:
    a, b, c = rng.randint(100, 9999), rng.randint(100, 9999), rng.randint(10, 999)
    r = a + b - c
    slips = [a + b + c, a - b - c, r + 10, r - 10, r + 100, r - 100, r + 1, r - 1]
    return f"What is {a} + {b} - {c}?", fmt(r), _near_numbers(rng, r, slips, MAX_OPTIONS), "arithmetic"


def _remainder(rng: random.Random) -> Generated:
    m = rng.randint(11, 29)
    n = rng.randint(200, 9999)
    r = n % m
    pool = [str(v) for v in range(m) if v != r]
    rng.shuffle(pool)
    return f"What is the remainder when {n} is divided by {m}?", str(r), pool, "arithmetic"


def _percentage(rng: random.Random) -> Generated:
    p = rng.choice([5, 10, 12, 15, 20, 25, 30, 35, 40, 45, 60, 75, 80, 120, 150])
    x = rng.randint(2, 80) * 20
    r = p * x / 100
    slips = [x * 100 / p, r * 10, r / 10, x - r, x + r, p * x / 1000, r + p, r - p]
    return f"What is {p}% of {x}?", fmt(r), _near_numbers(rng, r, slips, MAX_OPTIONS), "arithmetic"


# ---------------------------------------------------------------------------
# unit conversions

UNITS = [
    ("metres", "centimetres", 100), ("kilometres", "metres", 1000), ("kilograms", "grams", 1000),
    ("litres", "millilitres", 1000), ("hours", "minutes", 60), ("minutes", "seconds", 60),
    ("days", "hours", 24), ("weeks", "days", 7), ("feet", "inches", 12), ("yards", "feet", 3),
    ("tonnes", "kilograms", 1000), ("centimetres", "millimetres", 10),
]
FACTORS = sorted({f for _, _, f in UNITS} | {10, 100, 1000, 3600, 1024})


def _convert(rng: random.Random) -> Generated:
    big, small, factor = rng.choice(UNITS)
    value = rng.choice([rng.randint(2, 40), rng.randint(3, 99) / 4, rng.randint(11, 99) / 10])
    if rng.random() < 0.5:
        q = f"How many {small} are there in {fmt(value)} {big}?"
        r = value * factor
        slips = [value * f for f in FACTORS if f != factor] + [value / factor, value + factor, r * 10, r / 10]
    else:
        r = value * factor
        q = f"Convert {fmt(r)} {small} to {big}."
        r, value = value, r
        slips = [value / f for f in FACTORS if f != factor] + [value * factor, r * 10, r / 10, value - factor]
    return q, fmt(r), _near_numbers(rng, r, slips, MAX_OPTIONS), "unit conversion"


def _temperature(rng: random.Random) -> Generated:
    c = rng.choice(range(-20, 105, 5))
    f = c * 9 / 5 + 32
    slips = [c * 9 / 5, c * 5 / 9 + 32, (c + 32) * 5 / 9, (c - 32) * 5 / 9, c + 32, f + 10, f - 10, f + 5, 2 * c + 30]
    wrong = [fmt(s) for s in slips if fmt(s) != fmt(f)]
    pool = list(dict.fromkeys(w + " F" for w in wrong))
    return (f"A thermometer reads {c} degrees Celsius. What is that in degrees Fahrenheit?", fmt(f) + " F", pool,
            "unit conversion")


# ---------------------------------------------------------------------------
# logic


def _sequence(rng: random.Random) -> Generated:
    kind = rng.choice(["arith", "geom", "square", "fib"])
    if kind == "arith":
        a, d = rng.randint(1, 50), rng.randint(2, 15)
        seq = [a + d * i for i in range(6)]
    elif kind == "geom":
        a, q = rng.randint(1, 6), rng.randint(2, 4)
        seq = [a * q**i for i in range(6)]
    elif kind == "square":
        s = rng.randint(1, 9)
        seq = [(s + i) ** 2 for i in range(6)]
    else:
        x, y = rng.randint(1, 5), rng.randint(1, 8)
        seq = [x, y]
        while len(seq) < 6:
            seq.append(seq[-1] + seq[-2])
    shown, nxt = seq[:5], seq[5]
    d = shown[-1] - shown[-2]
    slips = [shown[-1] + d, shown[-1] * 2, nxt + 1, nxt - 1, shown[-1] + shown[-2], nxt + d, shown[-1] * 3]
    text = ", ".join(map(str, shown))
    return f"What number comes next in the sequence {text}, ...?", fmt(nxt), _near_numbers(rng, nxt, slips, MAX_OPTIONS), "logic"


NAMES = ["Ada", "Bruno", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemi", "Lars"]
TRAITS = [("taller", "tallest", "shortest"), ("older", "oldest", "youngest"), ("faster", "fastest", "slowest")]


def _ordering(rng: random.Random) -> Generated:
    people = rng.sample(NAMES, rng.randint(MIN_OPTIONS, 7))  # people[0] has the most of the trait
    more, most, least = rng.choice(TRAITS)
    facts = [f"{people[i]} is {more} than {people[i + 1]}." for i in range(len(people) - 1)]
    rng.shuffle(facts)
    ask_most = rng.random() < 0.5
    answer = people[0] if ask_most else people[-1]
    q = " ".join(facts) + f" Who is the {most if ask_most else least}?"
    return q, answer, [p for p in people if p != answer], "logic"


CONDITIONALS = [
    ("it rains", "it does not rain", "the street gets wet", "the street does not get wet"),
    ("the alarm rings", "the alarm does not ring", "Mia wakes up", "Mia does not wake up"),
    ("the switch is on", "the switch is off", "the lamp is lit", "the lamp is not lit"),
    ("the integer n is divisible by 6", "the integer n is not divisible by 6", "the number n is even",
     "the number n is not even"),
    ("the train is late", "the train is not late", "Omar misses the meeting", "Omar does not miss the meeting"),
]


def _conditional(rng: random.Random) -> Generated:
    p, not_p, q, not_q = rng.choice(CONDITIONALS)
    s_p, s_np, s_q, s_nq = (s[0].upper() + s[1:] for s in (p, not_p, q, not_q))
    u_p, u_q = f"Whether {p} cannot be determined", f"Whether {q} cannot be determined"
    contra = "The premises contradict each other"
    both = {(s_a, s_b): f"{s_a} and {b}" for s_a in (s_p, s_np) for s_b, b in ((s_q, q), (s_nq, not_q))}
    # form -> (the known fact, the one conclusion that must be true, statements that need not be)
    forms = {
        "ponens": (p, s_q, [s_np, s_nq, u_p, u_q, contra, both[s_p, s_nq], both[s_np, s_q], both[s_np, s_nq]]),
        "tollens": (not_q, s_np, [s_p, s_q, u_p, u_q, contra, both[s_p, s_nq], both[s_np, s_q], both[s_p, s_q]]),
        "consequent": (q, u_p, [s_p, s_np, s_nq, u_q, contra, both[s_p, s_nq], both[s_np, s_nq], both[s_p, s_q],
                                both[s_np, s_q]]),
        "antecedent": (not_p, u_q, [s_p, s_q, s_nq, u_p, contra, both[s_p, s_q], both[s_p, s_nq], both[s_np, s_q],
                                    both[s_np, s_nq]]),
    }
    known, correct, others = forms[rng.choice(sorted(forms))]
    q_text = f"Suppose that if {p}, then {q}. It is known that {known}. Which statement must be true?"
    return q_text, correct, others, "logic"


def _counting(rng: random.Random) -> Generated:
    n = rng.randint(50, 400)
    a, b = rng.sample([2, 3, 4, 5, 6, 7], 2)
    from math import lcm

    r = n // a + n // b - n // lcm(a, b)
    slips = [n // a + n // b, n // a, n // b, r + 1, r - 1, n // lcm(a, b), n - r, r + n // lcm(a, b)]
    q = f"How many integers from 1 to {n} (inclusive) are divisible by {a} or by {b}?"
    return q, fmt(r), _near_numbers(rng, r, slips, MAX_OPTIONS), "logic"


GENERATORS: list[Callable[[random.Random], Generated]] = [
    _product, _sum_difference, _remainder, _percentage,
    _convert, _convert, _temperature,
    _sequence, _ordering, _conditional, _counting,
]


def make_question(index: int, seed: int) -> dict[str, object]:
    """Question ``index`` of the set drawn with ``seed``: an MMLU-Pro-shaped row."""
    rng = random.Random(f"coral-builtin:{seed}:{index}")
    question, correct, distractors, category = GENERATORS[index % len(GENERATORS)](rng)
    distractors = list(dict.fromkeys(d for d in distractors if d != correct))
    n = min(rng.randint(MIN_OPTIONS, MAX_OPTIONS), len(distractors) + 1)
    chosen = rng.sample(distractors, n - 1)
    gold = gold_position([correct, *chosen])
    options = [*chosen[:gold], correct, *chosen[gold:]]
    return {
        "question_id": index,
        "question": question,
        "options": options,
        "answer": LETTERS[gold],
        "answer_index": gold,
        "category": category,
        "src": "slurmgen-builtin",
    }


def make_questions(count: int, seed: int) -> list[dict[str, object]]:
    return [make_question(i, seed) for i in range(count)]
