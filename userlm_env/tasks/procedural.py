"""An offline, unlimited generator of sharded multi-step arithmetic word problems.

Each problem comes from one of several templates (shopping, saving up, a trip, baking,
classroom supplies, a garden, a sales stand, reading a book, a pizza party, wages, a
collection), each with a few phrasings per sentence and a random person. A problem is a
list of *facts* (one short sentence each, every number as digits) and a question with no
numbers in it. Shard 1 is the question; shards 2..k are the facts in order.

Every draw is checked before it is returned:

- the numbers written in each fact are exactly the values that fact declares, so every
  number the solution needs is in a later shard and none is in shard 1;
- the answer, computed directly in code, equals the template's arithmetic expression
  evaluated exactly (fractions) on those numbers, and is a positive integer;
- numbers differ from each other and from the answer (the template is redrawn otherwise).
"""

from __future__ import annotations

import ast
import operator
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from userlm_env.tasks.source import TaskSource
from userlm_env.tasks.task import Shard, ShardedTask

__all__ = ["TEMPLATES", "ProceduralMathTasks", "evaluate_expression"]


# --------------------------------------------------------------------------- people, helpers


@dataclass(frozen=True)
class _Person:
    name: str
    subj: str  # she / he
    obj: str  # her / him
    pos: str  # her / his

    @property
    def Subj(self) -> str:  # noqa: N802 - reads like the sentence it builds
        return self.subj.capitalize()

    @property
    def Pos(self) -> str:  # noqa: N802
        return self.pos.capitalize()


_SHE = (
    "Maya Emma Olivia Sofia Ava Lena Chloe Zoe Priya Amara Grace Nina Leah Rosa Hana Julia "
    "Clara Fatima Ines Mei Aisha Lucy Elena Tara Naomi Ruby Sara Yuki Bella Daniela"
).split()
_HE = (
    "Liam Noah Ethan Lucas Omar Mateo Ben Jonah Ravi Diego Leo Samuel Kenji Owen Felix Hugo "
    "Adam Tariq Marco Eli Jamal Theo Arjun Caleb Nico Isaac Tomas Kai Oscar Malik"
).split()
PEOPLE = tuple(_Person(n, "she", "her", "her") for n in _SHE) + tuple(_Person(n, "he", "him", "his") for n in _HE)


def _an(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


@dataclass(frozen=True)
class _Fact:
    """One condition sentence and the values (name -> number) written in it."""

    text: str
    values: dict[str, int]


@dataclass(frozen=True)
class _Draft:
    """A drawn problem before checking."""

    question: str
    facts: list[_Fact]
    expression: str  # arithmetic over the fact value names
    answer: int
    solution: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- templates


def _shopping(r: random.Random, p: _Person, n: int) -> _Draft:
    store, goods = r.choice(
        [
            (
                "stationery store",
                [
                    ("notebook", "notebooks"),
                    ("pen", "pens"),
                    ("folder", "folders"),
                    ("marker", "markers"),
                    ("ruler", "rulers"),
                    ("eraser", "erasers"),
                ],
            ),
            (
                "market",
                [
                    ("melon", "melons"),
                    ("bag of apples", "bags of apples"),
                    ("loaf of bread", "loaves of bread"),
                    ("jar of honey", "jars of honey"),
                    ("box of eggs", "boxes of eggs"),
                    ("pineapple", "pineapples"),
                ],
            ),
            (
                "toy shop",
                [
                    ("puzzle", "puzzles"),
                    ("toy car", "toy cars"),
                    ("kite", "kites"),
                    ("yo-yo", "yo-yos"),
                    ("board game", "board games"),
                    ("ball", "balls"),
                ],
            ),
            (
                "garden center",
                [
                    ("flower pot", "flower pots"),
                    ("bag of soil", "bags of soil"),
                    ("rose bush", "rose bushes"),
                    ("watering can", "watering cans"),
                    ("pack of seeds", "packs of seeds"),
                ],
            ),
        ]
    )
    items = r.sample(goods, n - 1)
    facts, terms, lines, total = [], [], [], 0
    for i, (sing, plur) in enumerate(items, start=1):
        price = r.randint(2, 15)
        if r.random() < 0.3:
            text = r.choice(
                [f"{p.Subj} buys {_an(sing)} for ${price}.", f"{p.Subj} also gets {_an(sing)} that costs ${price}."]
            )
            facts.append(_Fact(text, {f"p{i}": price}))
            terms.append(f"p{i}")
            lines.append(f"The {sing} costs ${price}.")
            total += price
        else:
            qty = r.randint(2, 6)
            text = r.choice(
                [
                    f"{p.Subj} buys {qty} {plur} for ${price} each.",
                    f"{p.Subj} picks up {qty} {plur} that cost ${price} apiece.",
                    f"{p.Subj} also gets {qty} {plur} at ${price} each.",
                ]
            )
            facts.append(_Fact(text, {f"q{i}": qty, f"p{i}": price}))
            terms.append(f"q{i}*p{i}")
            lines.append(f"The {plur} cost {qty} x ${price} = ${qty * price}.")
            total += qty * price
    left = r.randint(3, 40)
    budget = total + left
    opening = r.choice(
        [
            f"{p.name} goes to the {store} with ${budget}.",
            f"{p.name} has ${budget} to spend at the {store}.",
            f"{p.name} takes ${budget} to the {store}.",
        ]
    )
    question = r.choice(
        [
            f"How much money does {p.name} have left?",
            f"How many dollars does {p.name} have left after shopping?",
            f"How much of {p.pos} money is left after the trip to the {store}?",
        ]
    )
    lines += [f"In total {p.subj} spends ${total}.", f"{p.Subj} has ${budget} - ${total} = ${left} left."]
    return _Draft(
        question, [_Fact(opening, {"budget": budget}), *facts], f"budget - ({' + '.join(terms)})", left, lines
    )


def _savings(r: random.Random, p: _Person, n: int) -> _Draft:
    thing = r.choice(["bike", "guitar", "tablet", "telescope", "skateboard", "video game console", "camera"])
    job = r.choice(["walking dogs", "mowing lawns", "babysitting", "delivering newspapers", "washing cars"])
    extras = r.sample(["saved", "gift", "spend"], n - 2)
    weeks, wage = r.randint(3, 12), r.randint(6, 25)
    saved = r.randint(10, 80) if "saved" in extras else 0
    gift = r.randint(10, 60) if "gift" in extras else 0
    spend = r.randint(2, wage - 3) if "spend" in extras else 0
    net = wage - spend
    cost = saved + gift + weeks * net
    relative = r.choice(["grandma", "grandpa", "aunt", "uncle"])
    facts = [
        _Fact(
            r.choice(
                [
                    f"{p.name} wants to buy {_an(thing)} that costs ${cost}.",
                    f"{p.name} is saving up for {_an(thing)} that costs ${cost}.",
                ]
            ),
            {"cost": cost},
        )
    ]
    if saved:
        facts.append(
            _Fact(
                r.choice(
                    [f"{p.Subj} has already saved ${saved}.", f"{p.Subj} already has ${saved} in {p.pos} piggy bank."]
                ),
                {"saved": saved},
            )
        )
    if gift:
        facts.append(_Fact(f"{p.Pos} {relative} gives {p.obj} ${gift} toward it.", {"gift": gift}))
    facts.append(
        _Fact(
            r.choice([f"{p.Subj} earns ${wage} a week from {job}.", f"Every week {p.subj} makes ${wage} {job}."]),
            {"wage": wage},
        )
    )
    if spend:
        facts.append(_Fact(f"Each week {p.subj} spends ${spend} of that on snacks.", {"spend": spend}))
    question = r.choice(
        [
            f"How many weeks will it take {p.name} to have enough money for the {thing}?",
            f"How many weeks does {p.name} need to save to buy the {thing}?",
            f"After how many weeks can {p.name} afford the {thing}?",
        ]
    )
    still = cost - saved - gift
    minus = "".join(f" - ${v}" for v in (saved, gift) if v)
    lines = [
        f"{p.Subj} still needs ${cost}{minus} = ${still}." if minus else f"{p.Subj} needs ${cost}.",
        f"{p.Subj} saves ${wage} - ${spend} = ${net} a week." if spend else f"{p.Subj} saves ${wage} a week.",
        f"It takes {still} / {net} = {weeks} weeks.",
    ]
    expression = "(cost" + (" - saved" if saved else "") + (" - gift" if gift else "") + ")"
    expression += " / (wage - spend)" if spend else " / wage"
    return _Draft(question, facts, expression, weeks, lines)


def _travel(r: random.Random, p: _Person, n: int) -> _Draft:
    modes = [("drives", 30, 65), ("rides the bus", 20, 45), ("bikes", 8, 16), ("takes a train", 50, 90)]
    walk_last = n >= 3 and r.random() < 0.5
    legs = n - 1 if walk_last else n
    facts, terms, lines, total = [], [], [], 0
    for i in range(1, legs + 1):
        verb, low, high = r.choice(modes)
        speed, hours = r.randint(low, high), r.randint(2, 6)
        if i == 1:
            text = r.choice(
                [
                    f"{p.name} {verb} at {speed} miles per hour for {hours} hours.",
                    f"{p.name} starts the trip: {p.subj} {verb} for {hours} hours at {speed} miles per hour.",
                ]
            )
        else:
            lead = r.choice(["Then", "Next,", "After that,", "After a break,"])
            text = r.choice(
                [
                    f"{lead} {p.subj} {verb} at {speed} miles per hour for {hours} hours.",
                    f"{lead} {p.subj} {verb} for {hours} hours at {speed} miles per hour.",
                ]
            )
        facts.append(_Fact(text, {f"s{i}": speed, f"h{i}": hours}))
        terms.append(f"s{i}*h{i}")
        lines.append(f"Leg {i}: {speed} x {hours} = {speed * hours} miles.")
        total += speed * hours
    if walk_last:
        dist = r.randint(3, 12)
        facts.append(
            _Fact(
                r.choice(
                    [
                        f"Finally, {p.subj} walks the last {dist} miles.",
                        f"{p.Subj} then hikes {dist} more miles to the lake.",
                    ]
                ),
                {"walk": dist},
            )
        )
        terms.append("walk")
        lines.append(f"Walking adds {dist} miles.")
        total += dist
    question = r.choice(
        [
            f"How many miles does {p.name} travel in total?",
            f"How far does {p.name} go altogether, in miles?",
            f"What is the total distance {p.name} covers, in miles?",
        ]
    )
    lines.append(f"Total: {total} miles.")
    return _Draft(question, facts, " + ".join(terms), total, lines)


def _baking(r: random.Random, p: _Person, n: int) -> _Draft:
    treat = r.choice(["cookies", "muffins", "cupcakes", "brownies", "bread rolls", "scones"])
    batches, per = r.randint(2, 6), r.randint(6, 24)
    made = batches * per
    facts = [
        _Fact(
            r.choice(
                [
                    f"{p.name} bakes {batches} batches of {treat}.",
                    f"{p.name} makes {batches} batches of {treat} for the school fair.",
                ]
            ),
            {"b": batches},
        ),
        _Fact(r.choice([f"Each batch makes {per} {treat}.", f"There are {per} {treat} in every batch."]), {"c": per}),
    ]
    givers = r.sample(
        [
            f"{p.Subj} gives {{g}} {treat} to {p.pos} neighbors.",
            f"{p.Subj} packs {{g}} {treat} for {p.pos} grandparents.",
            f"{p.Pos} friends eat {{g}} of them.",
            f"{p.Subj} sells {{g}} {treat} at the bake sale.",
            f"{p.Subj} drops {{g}} {treat} on the floor.",
        ],
        n - 2,
    )
    left, lines, terms = made, [f"{p.Subj} bakes {batches} x {per} = {made} {treat}."], []
    for i, phrase in enumerate(givers, start=1):
        g = r.randint(2, max(2, made // (len(givers) + 2)))
        facts.append(_Fact(phrase.format(g=g), {f"g{i}": g}))
        terms.append(f"g{i}")
        left -= g
        lines.append(f"After {g} more are gone, {left} are left.")
    question = r.choice(
        [
            f"How many {treat} does {p.name} have left?",
            f"How many {treat} are left for {p.name}?",
            f"How many {treat} does {p.name} still have at the end?",
        ]
    )
    return _Draft(question, facts, "b*c - " + " - ".join(terms), left, lines)


def _classroom(r: random.Random, p: _Person, n: int) -> _Draft:
    supply = r.choice(["pencils", "markers", "glue sticks", "sheets of paper", "stickers"])
    boys, girls, each = r.randint(8, 16), r.randint(8, 16), r.randint(2, 6)
    extras = {3: [], 4: [r.choice(["absent", "has"])], 5: ["absent", "has"]}[n]
    absent = r.randint(2, 5) if "absent" in extras else 0
    need = (boys + girls - absent) * each
    has = r.randint(5, need - 3) if "has" in extras else 0
    facts = [
        _Fact(
            r.choice([f"There are {boys} boys in {p.name}'s class.", f"{p.name}'s class has {boys} boys."]),
            {"boys": boys},
        ),
        _Fact(r.choice([f"There are also {girls} girls.", f"The class also has {girls} girls."]), {"girls": girls}),
        _Fact(
            r.choice(
                [
                    f"Each student needs {each} {supply} for the project.",
                    f"The teacher gives every student {each} {supply}.",
                ]
            ),
            {"each": each},
        ),
    ]
    if absent:
        facts.append(_Fact(f"{absent} students are absent today and do not get any.", {"absent": absent}))
    if has:
        facts.append(_Fact(f"The teacher already has {has} {supply}.", {"has": has}))
        question = r.choice(
            [
                f"How many more {supply} does {p.name}'s teacher need to buy?",
                f"How many {supply} does {p.name}'s teacher still have to buy?",
            ]
        )
    else:
        question = r.choice(
            [
                f"How many {supply} does {p.name}'s teacher hand out today?",
                f"How many {supply} does {p.name}'s teacher need today?",
            ]
        )
    present = boys + girls - absent
    lines = [
        f"{boys} + {girls}" + (f" - {absent}" if absent else "") + f" = {present} students get {supply}.",
        f"They need {present} x {each} = {need}.",
    ]
    if has:
        lines.append(f"Still to buy: {need} - {has} = {need - has}.")
    expression = "(boys + girls" + (" - absent" if absent else "") + ") * each" + (" - has" if has else "")
    return _Draft(question, facts, expression, need - has, lines)


def _garden(r: random.Random, p: _Person, n: int) -> _Draft:
    plant, crop = r.choice(
        [
            ("tomato plants", "tomatoes"),
            ("pepper plants", "peppers"),
            ("strawberry plants", "strawberries"),
            ("zucchini plants", "zucchinis"),
            ("cucumber plants", "cucumbers"),
        ]
    )
    rows, per_row, per_plant = r.randint(3, 8), r.randint(4, 12), r.randint(3, 9)
    grown = rows * per_row * per_plant
    facts = [
        _Fact(
            r.choice(
                [
                    f"{p.name} plants {rows} rows of {plant} in {p.pos} garden.",
                    f"{p.name}'s garden has {rows} rows of {plant}.",
                ]
            ),
            {"rows": rows},
        ),
        _Fact(
            r.choice([f"Each row has {per_row} plants.", f"There are {per_row} plants in every row."]), {"k": per_row}
        ),
        _Fact(
            r.choice([f"Each plant grows {per_plant} {crop}.", f"Every plant produces {per_plant} {crop}."]),
            {"v": per_plant},
        ),
    ]
    losses = r.sample(
        [
            f"Birds eat {{x}} of the {crop}.",
            f"Rabbits get into the garden and eat {{x}} {crop}.",
            f"{p.Subj} gives {{x}} {crop} to {p.pos} neighbor.",
        ],
        n - 3,
    )
    left, terms = grown, []
    lines = [f"{rows} x {per_row} = {rows * per_row} plants grow {rows * per_row} x {per_plant} = {grown} {crop}."]
    for i, phrase in enumerate(losses, start=1):
        x = r.randint(3, max(3, grown // 4))
        facts.append(_Fact(phrase.format(x=x), {f"x{i}": x}))
        terms.append(f" - x{i}")
        left -= x
        lines.append(f"Minus {x}: {left} left.")
    question = r.choice([f"How many {crop} does {p.name} end up with?", f"How many {crop} does {p.name} get to keep?"])
    return _Draft(question, facts, "rows*k*v" + "".join(terms), left, lines)


def _sales(r: random.Random, p: _Person, n: int) -> _Draft:
    product, low, high = r.choice(
        [
            ("cups of lemonade", 2, 4),
            ("friendship bracelets", 3, 8),
            ("cupcakes", 2, 5),
            ("birdhouses", 12, 25),
            ("painted mugs", 6, 14),
        ]
    )
    with_cost = n >= 3 and (n == 5 or r.random() < 0.6)
    days = n - 1 - int(with_cost)
    day_names = r.choice([["Friday", "Saturday", "Sunday"], ["Monday", "Tuesday", "Wednesday"]])[:days]
    price = r.randint(low, high)
    facts = [
        _Fact(
            r.choice(
                [
                    f"{p.name} sells {product} for ${price} each.",
                    f"{p.name} runs a stand selling {product} at ${price} each.",
                ]
            ),
            {"price": price},
        )
    ]
    counts = []
    for i, day in enumerate(day_names, start=1):
        c = r.randint(5, 30)
        counts.append(c)
        facts.append(
            _Fact(
                r.choice([f"{p.Subj} sells {c} {product} on {day}.", f"On {day}, {p.subj} sells {c} {product}."]),
                {f"c{i}": c},
            )
        )
    revenue = price * sum(counts)
    cost = r.randint(5, revenue - 3) if with_cost else 0
    lines = [f"{p.Subj} sells {sum(counts)} in all for {sum(counts)} x ${price} = ${revenue}."]
    expression = f"price * ({' + '.join(f'c{i}' for i in range(1, days + 1))})"
    if with_cost:
        facts.append(
            _Fact(
                r.choice([f"The supplies cost {p.obj} ${cost} in total.", f"{p.Subj} spent ${cost} on supplies."]),
                {"cost": cost},
            )
        )
        expression += " - cost"
        lines.append(f"After ${cost} of supplies: ${revenue - cost}.")
        question = r.choice(
            [
                f"How much profit does {p.name} make?",
                f"How much money does {p.name} make after paying for the supplies?",
            ]
        )
    else:
        question = r.choice([f"How much money does {p.name} make?", f"How many dollars does {p.name} take in?"])
    return _Draft(question, facts, expression, revenue - cost, lines)


def _reading(r: random.Random, p: _Person, n: int) -> _Draft:
    per_day, days = r.randint(8, 40), r.randint(3, 7)
    day_names = r.choice([["Monday", "Tuesday", "Wednesday"], ["Saturday", "Sunday", "Monday"]])[: n - 2]
    done = [r.randint(10, 60) for _ in day_names]
    pages = sum(done) + per_day * days
    facts = [
        _Fact(
            r.choice([f"{p.name}'s book has {pages} pages.", f"{p.name} is reading a book with {pages} pages."]),
            {"pages": pages},
        )
    ]
    for i, (day, a) in enumerate(zip(day_names, done, strict=True), start=1):
        facts.append(
            _Fact(
                r.choice([f"{p.Subj} reads {a} pages on {day}.", f"On {day}, {p.subj} reads {a} pages."]), {f"a{i}": a}
            )
        )
    facts.append(
        _Fact(
            r.choice(
                [
                    f"{p.Subj} wants to finish the book in the next {days} days, "
                    "reading the same number of pages each day.",
                    f"{p.Subj} plans to read the rest over {days} days, the same amount every day.",
                ]
            ),
            {"days": days},
        )
    )
    question = r.choice(
        [
            f"How many pages does {p.name} need to read each day?",
            f"How many pages a day must {p.name} read to finish the book?",
        ]
    )
    rest = pages - sum(done)
    expression = "(pages" + "".join(f" - a{i}" for i in range(1, len(done) + 1)) + ") / days"
    lines = [f"Pages left: {pages} - {sum(done)} = {rest}.", f"Per day: {rest} / {days} = {per_day}."]
    return _Draft(question, facts, expression, per_day, lines)


def _party(r: random.Random, p: _Person, n: int) -> _Draft:
    extras = {3: [], 4: [r.choice(["extra", "has"])], 5: ["extra", "has"]}[n]
    while True:  # draw until the slices split into whole pizzas (always terminates quickly)
        size, each, guests = r.choice([6, 8, 10, 12]), r.randint(2, 4), r.randint(5, 20)
        extra = (-guests * each) % size if "extra" in extras else 0
        if "extra" in extras and extra < 3:
            extra += size
        if (guests * each + extra) % size == 0 and (guests * each + extra) // size >= 4:
            break
    pizzas = (guests * each + extra) // size
    has = r.randint(2, pizzas - 2) if "has" in extras else 0
    who = r.choice(["guests", "friends"])
    facts = [
        _Fact(
            r.choice(
                [f"{p.name} is having {guests} {who} over for a party.", f"{p.name} invites {guests} {who} to a party."]
            ),
            {"guests": guests},
        ),
        _Fact(
            r.choice(
                [
                    f"Each of the {who} will eat {each} slices of pizza.",
                    f"Every one of the {who} eats {each} slices of pizza.",
                ]
            ),
            {"each": each},
        ),
        _Fact(r.choice([f"Each pizza is cut into {size} slices.", f"A pizza has {size} slices."]), {"size": size}),
    ]
    if extra:
        facts.append(_Fact(f"{p.Subj} also wants {extra} extra slices for {p.pos} family.", {"extra": extra}))
    if has:
        facts.append(_Fact(f"{p.Subj} already has {has} pizzas in the freezer.", {"has": has}))
    question = r.choice([f"How many pizzas does {p.name} need to order?", f"How many pizzas should {p.name} buy?"])
    slices = guests * each + extra
    lines = [
        f"Slices needed: {guests} x {each}" + (f" + {extra}" if extra else "") + f" = {slices}.",
        f"Pizzas: {slices} / {size} = {pizzas}.",
    ]
    if has:
        lines.append(f"Minus {has} at home: {pizzas - has}.")
    expression = "(guests*each" + (" + extra" if extra else "") + ") / size" + (" - has" if has else "")
    return _Draft(question, facts, expression, pizzas - has, lines)


def _wages(r: random.Random, p: _Person, n: int) -> _Draft:
    place = r.choice(["cafe", "bookstore", "bakery", "swimming pool", "animal shelter"])
    extras = {3: [], 4: [r.choice(["tips", "fare"])], 5: ["tips", "fare"]}[n]
    wage, hours, days = r.randint(9, 20), r.randint(3, 8), r.randint(2, 6)
    tips = r.randint(10, 60) if "tips" in extras else 0
    fare = r.randint(5, 30) if "fare" in extras else 0
    facts = [
        _Fact(
            r.choice(
                [
                    f"{p.name} earns ${wage} an hour at the {place}.",
                    f"{p.name} works at the {place} and is paid ${wage} per hour.",
                ]
            ),
            {"wage": wage},
        ),
        _Fact(
            r.choice(
                [f"{p.Subj} works {hours} hours a day.", f"Each day {p.subj} works, {p.subj} puts in {hours} hours."]
            ),
            {"hours": hours},
        ),
        _Fact(
            r.choice([f"{p.Subj} works {days} days this week.", f"This week {p.subj} works on {days} days."]),
            {"days": days},
        ),
    ]
    if tips:
        facts.append(_Fact(f"{p.Subj} also gets ${tips} in tips this week.", {"tips": tips}))
    if fare:
        facts.append(_Fact(f"{p.Subj} spends ${fare} on bus fare to get there this week.", {"fare": fare}))
    pay = wage * hours * days
    question = r.choice(
        [f"How much money does {p.name} end up with this week?", f"How many dollars does {p.name} take home this week?"]
    )
    lines = [f"Pay: {wage} x {hours} x {days} = ${pay}."]
    if tips:
        lines.append(f"Plus ${tips} in tips: ${pay + tips}.")
    if fare:
        lines.append(f"Minus ${fare} bus fare: ${pay + tips - fare}.")
    expression = "wage*hours*days" + (" + tips" if tips else "") + (" - fare" if fare else "")
    return _Draft(question, facts, expression, pay + tips - fare, lines)


def _collection(r: random.Random, p: _Person, n: int) -> _Draft:
    things = r.choice(["marbles", "stickers", "baseball cards", "seashells", "stamps", "trading cards"])
    start, packs, per = r.randint(15, 90), r.randint(2, 6), r.randint(4, 12)
    facts = [
        _Fact(
            r.choice(
                [f"{p.name} has {start} {things}.", f"{p.name} starts with {start} {things} in {p.pos} collection."]
            ),
            {"start": start},
        ),
        _Fact(
            r.choice([f"{p.Subj} buys {packs} packs of {things}.", f"{p.Subj} gets {packs} new packs of {things}."]),
            {"packs": packs},
        ),
        _Fact(r.choice([f"Each pack has {per} {things}.", f"There are {per} {things} in every pack."]), {"per": per}),
    ]
    total = start + packs * per
    losses = r.sample(
        [
            f"{p.Subj} gives {{x}} {things} to {p.pos} sister.",
            f"{p.Subj} loses {{x}} {things} at school.",
            f"{p.Subj} trades away {{x}} {things}.",
        ],
        n - 3,
    )
    terms, left = [], total
    lines = [f"{start} + {packs} x {per} = {total}."]
    for i, phrase in enumerate(losses, start=1):
        x = r.randint(3, max(3, total // 4))
        facts.append(_Fact(phrase.format(x=x), {f"x{i}": x}))
        terms.append(f" - x{i}")
        left -= x
        lines.append(f"Minus {x}: {left}.")
    question = r.choice(
        [f"How many {things} does {p.name} have now?", f"How many {things} are in {p.name}'s collection at the end?"]
    )
    return _Draft(question, facts, "start + packs*per" + "".join(terms), left, lines)


@dataclass(frozen=True)
class _Template:
    name: str
    build: Callable[[random.Random, _Person, int], _Draft]
    min_facts: int
    max_facts: int


TEMPLATES: tuple[_Template, ...] = (
    _Template("shopping", _shopping, 2, 5),
    _Template("savings", _savings, 2, 5),
    _Template("travel", _travel, 2, 5),
    _Template("baking", _baking, 3, 5),
    _Template("classroom", _classroom, 3, 5),
    _Template("garden", _garden, 3, 5),
    _Template("sales", _sales, 2, 5),
    _Template("reading", _reading, 2, 5),
    _Template("party", _party, 3, 5),
    _Template("wages", _wages, 3, 5),
    _Template("collection", _collection, 3, 5),
)
"""The problem templates; a template with k facts gives k + 1 shards."""


# --------------------------------------------------------------------------- checking

_OPS: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate_expression(expression: str, values: dict[str, int] | None = None) -> Fraction:
    """Evaluate ``+ - * /`` arithmetic exactly, with names looked up in ``values``.

    Args:
        expression: e.g. ``"budget - (q1*p1 + p2)"`` or ``"50 - (3*4 + 5)"``.
        values: the value of each name (missing names are an error).

    Returns:
        The exact value.

    Raises:
        ValueError: on anything but numbers, names, parentheses and ``+ - * /``.
    """
    values = values or {}

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return Fraction(node.value)
        if isinstance(node, ast.Name) and node.id in values:
            return Fraction(values[node.id])
        raise ValueError(f"unsupported element {ast.dump(node)[:60]!r} in expression {expression!r}")

    return ev(ast.parse(expression, mode="eval"))


def _substitute(expression: str, values: dict[str, int]) -> str:
    return re.sub(r"\b[A-Za-z_]\w*\b", lambda m: str(values[m.group(0)]), expression)


def _numbers_distinct(draft: _Draft) -> bool:
    numbers = [v for fact in draft.facts for v in fact.values.values()]
    return len(set(numbers)) == len(numbers) and draft.answer not in numbers


def _require(condition: bool, message: str) -> None:
    """Like ``assert``, but kept under ``python -O``."""
    if not condition:
        raise AssertionError(message)


def _self_check(draft: _Draft, template: str, seed: int) -> dict[str, int]:
    """Assert the invariants of the module docstring; return the values read from the shards."""
    where = f"procedural template {template!r}, seed {seed}"
    _require(not re.search(r"\d", draft.question), f"{where}: the question has a number: {draft.question!r}")
    read: dict[str, int] = {}
    for fact in draft.facts:
        written = Counter(int(x) for x in re.findall(r"\d+", fact.text))
        _require(written == Counter(fact.values.values()), f"{where}: fact {fact.text!r} does not show {fact.values}")
        read.update(fact.values)
    result = evaluate_expression(draft.expression, read)
    _require(result == draft.answer, f"{where}: expression gives {result}, code gives {draft.answer}")
    _require(
        isinstance(draft.answer, int) and draft.answer > 0,
        f"{where}: answer {draft.answer!r} is not a positive integer",
    )
    return read


# --------------------------------------------------------------------------- the source


class ProceduralMathTasks(TaskSource):
    """Unlimited seeded arithmetic word problems with 3 to 6 shards.

    Args:
        min_shards: the fewest shards (at least 3).
        max_shards: the most shards (at most 6).
        name: the source's name; defaults to ``"procedural"`` or ``"procedural[<min>-<max>]"``.

    Raises:
        ValueError: when the shard range is empty or outside 3..6.

    Example:
        >>> task = ProceduralMathTasks().generate(7)
        >>> task.task_id, 3 <= task.num_shards <= 6
        ('procedural/7', True)
    """

    def __init__(self, min_shards: int = 3, max_shards: int = 6, name: str | None = None) -> None:
        if not 3 <= min_shards <= max_shards <= 6:
            raise ValueError(
                f"need 3 <= min_shards <= max_shards <= 6, got min_shards={min_shards}, max_shards={max_shards}"
            )
        self.min_shards, self.max_shards = min_shards, max_shards
        default = "procedural" if (min_shards, max_shards) == (3, 6) else f"procedural[{min_shards}-{max_shards}]"
        self.name = name or default
        self._templates = [t for t in TEMPLATES if t.min_facts + 1 <= max_shards and t.max_facts + 1 >= min_shards]

    @property
    def stats(self) -> dict[str, int]:
        """Generator facts: the number of templates in use and the shard range."""
        return {"templates": len(self._templates), "min_shards": self.min_shards, "max_shards": self.max_shards}

    def sample(self, rng: np.random.Generator) -> ShardedTask:
        """Draw ``seed = rng.integers(2**31)`` and return ``generate(seed)``."""
        return self.generate(int(rng.integers(2**31)))

    def generate(self, seed: int) -> ShardedTask:
        """The task for ``seed`` (a pure function of the seed and the shard range).

        Args:
            seed: any integer.

        Returns:
            A task with id ``procedural/<seed>``.
        """
        r = random.Random(seed)
        template = r.choice(self._templates)
        n_facts = r.randint(max(template.min_facts, self.min_shards - 1), min(template.max_facts, self.max_shards - 1))
        person = r.choice(PEOPLE)
        for _ in range(500):
            draft = template.build(r, person, n_facts)
            if _numbers_distinct(draft) and draft.answer > 1:
                break
        values = _self_check(draft, template.name, seed)
        concrete = _substitute(draft.expression, values)
        texts = [draft.question] + [fact.text for fact in draft.facts]
        return ShardedTask(
            task_id=f"procedural/{seed}",
            instruction=" ".join(texts[1:] + texts[:1]),
            shards=tuple(Shard(i, text) for i, text in enumerate(texts, start=1)),
            answer=str(draft.answer),
            kind="math",
            metadata={
                "source": "procedural",
                "seed": seed,
                "template": template.name,
                "values": values,
                "expression": concrete,
                "solution": " ".join(draft.solution) + f" The answer is {draft.answer}.",
            },
        )
