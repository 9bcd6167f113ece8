"""Generated DCLM-shaped web documents: the NR workflow's built-in dataset.

No web text is available offline, so pages are composed from the sentence banks
below (written for slurmgen): technical pages (a problem plus its derivation or a
forum discussion of it) and junk pages (shop fronts, cookie banners, gossip, spam).
Some pages carry a share of non-English filler words and an ``en`` score below the
0.8 gate. Lengths are log-uniform between ``MIN_WORDS`` and ``MAX_WORDS``, so that
rows are as heterogeneous as real web pages. Everything is drawn from one seeded
``random.Random``: the same seed gives the same corpus, byte for byte.
"""

from __future__ import annotations

import math
import random
import uuid

MIN_WORDS = 50
MAX_WORDS = 3000
TECHNICAL_SHARE = 0.55  # the rest is junk
LOW_EN_SHARE = 0.12  # pages with an `en` score below 0.8

TOPICS = {
    "mechanics": [
        "A block of mass {a} kg rests on an incline of {d} degrees with a friction coefficient of 0.{n}.",
        "The spring constant is {b} N/m and the block is released from a compression of {c} cm.",
        "By the work-energy theorem the kinetic energy at the bottom is {a}{n} J minus the friction work.",
        "The normal force is m g cos(theta), so the friction force scales with the cosine of the angle.",
        "Solving for the velocity gives v = sqrt(2 g h (1 - mu cot theta)), which is about {c} m/s.",
    ],
    "probability": [
        "An urn holds {a} red and {b} blue balls and we draw {n} without replacement.",
        "The number of red balls drawn follows a hypergeometric distribution with mean {n}*{a}/({a}+{b}).",
        "By linearity of expectation we do not need the joint distribution of the indicator variables.",
        "Conditioning on the first draw splits the problem into two smaller urns of sizes {a} and {b}.",
        "The variance carries the finite population correction factor (N - n)/(N - 1).",
    ],
    "number theory": [
        "We want all integers x with x^2 = {n} (mod {p}).",
        "Since {p} is prime, the multiplicative group modulo {p} is cyclic of order {p}-1.",
        "Euler's criterion says {n} is a quadratic residue exactly when {n}^(({p}-1)/2) = 1 (mod {p}).",
        "Lifting the solution with Hensel's lemma gives the residues modulo {p}^2 as well.",
        "The Chinese remainder theorem then combines the answers for the two prime powers.",
    ],
    "algorithms": [
        "Given a weighted graph with {a} vertices and {b} edges, find the shortest path from s to t.",
        "Dijkstra's algorithm with a binary heap runs in O((V + E) log V) time here.",
        "A negative edge of weight -{n} breaks the greedy invariant, so Bellman-Ford is needed.",
        "Relaxing every edge {a} - 1 times guarantees that all shortest distances are final.",
        "The memoised recursion visits each state once, for {a}*{b} states in total.",
    ],
    "thermodynamics": [
        "An ideal gas expands isothermally at {t} K from {c} L to {d} L.",
        "The work done by the gas is n R T ln(V2/V1), roughly {a}{n} J for one mole.",
        "Because the internal energy of an ideal gas depends only on temperature, Q equals W.",
        "The reservoir loses entropy Q/T, so the total entropy change of the reversible path is zero.",
        "For the free expansion the same end state is reached but no work is done.",
    ],
    "linear algebra": [
        "Let A be the {n}x{n} matrix with {a} on the diagonal and 1 everywhere else.",
        "A equals ({a}-1) I plus the all-ones matrix J, and J has rank one.",
        "The eigenvalues are therefore {a}-1 with multiplicity {n}-1 and {a}-1+{n} once.",
        "The determinant is the product of the eigenvalues, which avoids any cofactor expansion.",
        "The inverse follows from the Sherman-Morrison formula applied to the rank-one update.",
    ],
    "circuits": [
        "A {b} ohm resistor and a {c} mF capacitor are in series with a {a} V source.",
        "The time constant tau = R C comes out as {d} ms.",
        "Kirchhoff's voltage law gives the first order equation R i + q/C = V.",
        "After five time constants the capacitor holds more than 99 percent of its final charge.",
        "Half of the energy delivered by the source is dissipated in the resistor, whatever R is.",
    ],
    "economics": [
        "A monopolist faces the demand curve P = {a}{n} - {n} Q with marginal cost {b}.",
        "Setting marginal revenue equal to marginal cost gives the profit-maximising quantity.",
        "The deadweight loss is the triangle between the demand curve and the marginal cost line.",
        "With a per-unit tax of {n}, the price rises by only half of the tax for linear demand.",
        "The Lerner index (P - MC)/P equals the inverse of the price elasticity at the optimum.",
    ],
}

REASONING = [
    "Substituting this into the first equation gives a single condition on the unknown.",
    "Therefore the answer does not depend on {x}, which is a useful sanity check.",
    "I think the mistake in the original post is a sign error in the second step.",
    "Checking the limiting case {x} -> 0 recovers the textbook result.",
    "If we instead assume {x} is large, the leading term dominates and the estimate is {c}.",
    "Let me redo the calculation: the factor of {n} comes from the symmetry of the setup.",
    "This is exactly where the boundary condition enters, and it fixes the constant to {a}.",
    "Both methods agree, so the result is {a}.{n} to three significant figures.",
    "Note that the argument needs {x} to be positive; otherwise the inequality flips.",
    "The dimensions check out: both sides are measured in the same units.",
]

FORUM = [
    "Posted by {user} on {date}:",
    "Re: {user}, that is not quite right.",
    "Reply from {user}: thanks, that makes sense now.",
    "Edit: fixed a typo in the third line.",
    "Quote from {user}: could someone explain the last step?",
]

JUNK = [
    "Click here to subscribe to our newsletter and get {n}0% off your first order!",
    "Free shipping on all orders over ${a}. Limited time only.",
    "We use cookies to improve your experience. By continuing you accept our cookie policy.",
    "Home | About us | Shop | Blog | Contact | Privacy policy | Terms of service",
    "Top {n} celebrity outfits you will not believe were worn to the premiere.",
    "Our hand-picked collection of {noun} is back in stock in {n} colours.",
    "Great post, thanks for sharing!!! Check out my page for more {noun}.",
    "The {team} won {a} to {n} last night after a dramatic second half.",
    "Rated {n} out of 5 stars by {a}{n} happy customers.",
    "Sign in to see your recommendations. New customer? Start here.",
    "Copyright {year} All rights reserved. Powered by a popular blogging platform.",
    "Best cheap {noun} online, buy now, best price, {noun} deals, {noun} sale.",
]

FOREIGN = (
    "und der die nicht sind pour les avec dans della sono una para con "
    "como pero muito obrigado zeer goed niet waar jest nie tak"
).split()

USERS = ["quarkhunter", "mod_alice", "tensor42", "bob_the_tutor", "gradstudent7", "lemma_fan"]
NOUNS = ["sneakers", "phone cases", "garden chairs", "scented candles", "yoga mats"]
TEAMS = ["Harbour City Rovers", "Northside United", "the Valley Hawks"]
SITES = ["forum.example.edu", "physics-help.example.org", "shop.example.com", "news.example.net"]


def _slots(rng: random.Random) -> dict[str, object]:
    return {
        "a": rng.randint(2, 99),
        "b": rng.randint(2, 500),
        "c": round(rng.uniform(0.5, 50), 2),
        "d": rng.randint(10, 80),
        "n": rng.randint(2, 9),
        "p": rng.choice([7, 11, 13, 17, 19, 23]),
        "t": rng.choice([273, 300, 350, 400]),
        "x": rng.choice(["x", "t", "k", "epsilon"]),
        "user": rng.choice(USERS),
        "date": f"20{rng.randint(10, 24)}-0{rng.randint(1, 9)}-{rng.randint(10, 28)}",
        "noun": rng.choice(NOUNS),
        "team": rng.choice(TEAMS),
        "year": rng.randint(2005, 2024),
    }


def _sentence(rng: random.Random, bank: list[str]) -> str:
    return rng.choice(bank).format(**_slots(rng))


def _technical_sentence(rng: random.Random, topic: str) -> str:
    roll = rng.random()
    bank = TOPICS[topic] if roll < 0.5 else REASONING if roll < 0.85 else FORUM
    return _sentence(rng, bank)


def _word_target(rng: random.Random) -> int:
    return round(math.exp(rng.uniform(math.log(MIN_WORDS), math.log(MAX_WORDS))))


def _compose(rng: random.Random, technical: bool, foreign_share: float) -> str:
    """Paragraphs of sentences until the sampled word count is reached."""
    topic = rng.choice(sorted(TOPICS))
    target, words, paragraphs, current = _word_target(rng), 0, [], []
    while words < target:
        text = _technical_sentence(rng, topic) if technical else _sentence(rng, JUNK)
        if rng.random() < foreign_share:
            text = " ".join(rng.choices(FOREIGN, k=rng.randint(4, 12))) + ". " + text
        current.append(text)
        words += len(text.split())
        if len(current) >= rng.randint(3, 7):
            paragraphs.append(" ".join(current))
            current = []
    paragraphs.append(" ".join(current))
    return "\n\n".join(p for p in paragraphs if p)


def make_document(rng: random.Random) -> dict[str, object]:
    """One DCLM-shaped record: text, url, WARC id and fastText language scores."""
    technical = rng.random() < TECHNICAL_SHARE
    low_en = rng.random() < LOW_EN_SHARE
    en = rng.uniform(0.30, 0.79) if low_en else rng.uniform(0.80, 0.9999)
    record_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    return {
        "text": _compose(rng, technical, foreign_share=(1.0 - en) * 0.8),
        "url": f"https://{rng.choice(SITES)}/{'t' if technical else 'p'}/{record_id.hex[:12]}",
        "metadata": {"WARC-Record-ID": f"<urn:uuid:{record_id}>"},
        "language_id_whole_page_fasttext": {"en": round(en, 4)},
    }


def make_corpus(size: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [make_document(rng) for _ in range(size)]
