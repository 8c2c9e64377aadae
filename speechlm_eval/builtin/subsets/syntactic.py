"""sBLIMP-style syntactic subset in the ZeroSpeech 2021 ``syntactic/dev`` layout.

Minimal sentence pairs (grammatical vs ungrammatical) from hand-written grammar
templates and vocabulary lists, one or more paradigms for each of the 12 ZR2021
(BLiMP) phenomenon types. A paradigm is a template with slots; every slot
combination is a candidate pair, drawn without replacement in a seeded order,
and no sentence is used twice in the whole subset. Both members of a pair are
spoken from text by the same voice.

Each paradigm declares how its two sentences differ, and the tests check it:
``sub1`` one word replaced, ``sub2`` two words replaced, ``move`` the same words
in another order (ellipsis and island paradigms, as in BLiMP).

Duration balance: in many paradigms one member is systematically longer ("him" vs
"himself", "not" vs "probably"), so "prefer the shorter file" beat chance. Candidate
pairs are screened for their exact durations in every voice before synthesis and
kept only if the two sentences differ by at most ``MAX_MISMATCH`` in every voice and
taking the pair keeps the length-only rule at chance within the type and overall
(``balance.py``); the paradigms of a type still take turns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from math import ceil, prod
from typing import Any

from ..balance import Balance, balance_row, mismatch, pair_score, summary
from ..context import BuildContext, Subset, SubsetResult, stem
from ..synth import Utterance

OUT = "zerospeech2021/syntactic/dev"
PER_TYPE = {"tiny": 2, "small": 30, "full": 200}
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)
MAX_DRAW = 6000  # candidate slot combinations drawn per paradigm (a fixed number: determinism)
MAX_MISMATCH = 0.15  # |dur(good) - dur(bad)| / shorter, in every voice

TYPES = (
    "anaphor_agreement", "argument_structure", "binding", "control_raising",
    "determiner_noun_agreement", "ellipsis", "filler_gap", "irregular_forms", "island_effects",
    "npi_licensing", "quantifiers", "subject_verb_agreement",
)  # fmt: skip

# ---------------------------------------------------------------- vocabulary
# Nouns as (singular, plural). Gendered nouns are the ones whose gender is lexical.
MALE = (
    ("king", "kings"), ("boy", "boys"), ("man", "men"), ("father", "fathers"),
    ("brother", "brothers"), ("uncle", "uncles"), ("prince", "princes"), ("son", "sons"),
    ("husband", "husbands"), ("nephew", "nephews"), ("monk", "monks"),
)  # fmt: skip
FEMALE = (
    ("queen", "queens"), ("girl", "girls"), ("woman", "women"), ("mother", "mothers"),
    ("sister", "sisters"), ("aunt", "aunts"), ("princess", "princesses"),
    ("daughter", "daughters"), ("wife", "wives"), ("niece", "nieces"), ("nun", "nuns"),
)  # fmt: skip
KIN_M = ("father", "brother", "uncle", "son", "husband", "nephew")
KIN_F = ("mother", "sister", "aunt", "daughter", "wife", "niece")
PEOPLE = (
    ("teacher", "teachers"), ("doctor", "doctors"), ("student", "students"),
    ("farmer", "farmers"), ("driver", "drivers"), ("singer", "singers"), ("baker", "bakers"),
    ("lawyer", "lawyers"), ("pilot", "pilots"), ("painter", "painters"),
    ("writer", "writers"), ("dancer", "dancers"), ("nurse", "nurses"), ("guest", "guests"),
    ("neighbor", "neighbors"),
)  # fmt: skip
PERSON = tuple(sg for sg, _ in PEOPLE)
# Irregular plurals (none has a plural identical to its singular).
IRREGULAR = (
    ("child", "children"), ("man", "men"), ("woman", "women"), ("mouse", "mice"),
    ("goose", "geese"), ("person", "people"),
)  # fmt: skip
# All consonant-initial (they follow "a").
THINGS = (
    ("cat", "cats"), ("mouse", "mice"), ("letter", "letters"), ("stranger", "strangers"),
    ("bird", "birds"), ("light", "lights"), ("puddle", "puddles"), ("crack", "cracks"),
    ("box", "boxes"), ("spider", "spiders"), ("dog", "dogs"), ("ladder", "ladders"),
)  # fmt: skip
LOCS = (
    "in the kitchen", "on the roof", "under the bridge", "near the door", "behind the house",
    "in the garden", "in the hallway", "on the stairs",
)  # fmt: skip
OBJECTS = (
    ("cup", "cups"), ("plate", "plates"), ("book", "books"), ("chair", "chairs"),
    ("lamp", "lamps"), ("shirt", "shirts"), ("bag", "bags"), ("bottle", "bottles"),
    ("picture", "pictures"), ("table", "tables"), ("pen", "pens"), ("key", "keys"),
    ("hat", "hats"), ("coat", "coats"), ("basket", "baskets"), ("candle", "candles"),
)  # fmt: skip
OBJ_VERBS = ("bought", "found", "sold", "carried", "cleaned", "noticed", "wanted", "chose")
COLOR_ADJ = ("old", "new", "small", "large", "red", "blue", "heavy", "cheap", "clean", "green")
SIZE_ADJ = ("old", "new", "small", "large", "heavy", "cheap", "clean")  # no colour words:
# "two reds" can be a noun phrase, so N-bar ellipsis uses these only.
REFLEXIVE_VERBS = (
    "praised", "blamed", "hurt", "helped", "described", "admired", "trusted", "protected",
    "forgave", "criticized", "introduced", "defended",
)  # fmt: skip
# Verbs that need a direct object (none is fine without one) and verbs that allow none
# (none has a transitive use with an ordinary object such as "the map").
TRANSITIVE = ("found", "described", "brought", "mentioned", "liked", "needed")
INTRANSITIVE = ("arrived", "fainted", "sneezed", "yawned", "giggled", "frowned", "laughed")
ARG_OBJECTS = ("map", "book", "letter", "painting", "photo", "ticket")
TIMES = ("yesterday", "this morning", "at noon", "after dinner", "last night", "again")
# Embedded transitive verbs with objects that suit them.
EMBEDDED = (
    ("found", ("the key", "the map", "the wallet")),
    ("described", ("the painting", "the house", "the accident")),
    ("brought", ("the cake", "the flowers", "the chairs")),
    ("mentioned", ("the meeting", "the accident", "the problem")),
    ("needed", ("the money", "the car", "the ladder")),
    ("liked", ("the movie", "the song", "the painting")),
)  # fmt: skip
FG_MATRIX = ("knew", "forgot", "remembered", "discovered", "learned")
# Irregular verbs: (simple past, past participle, objects). Left out on purpose: verbs
# whose participle is a common dialectal past ("seen", "done", "sung", "drunk", "begun").
IRREGULAR_VERBS = (
    ("wrote", "written", ("the letter", "the poem", "the report")),
    ("broke", "broken", ("the window", "the vase", "the mirror")),
    ("ate", "eaten", ("the apple", "the sandwich", "the soup")),
    ("stole", "stolen", ("the car", "the bicycle", "the ring")),
    ("drove", "driven", ("the truck", "the bus", "the tractor")),
    ("chose", "chosen", ("the book", "the gift", "the color")),
    ("hid", "hidden", ("the key", "the money", "the letter")),
    ("drew", "drawn", ("the map", "the picture", "the horse")),
    ("threw", "thrown", ("the ball", "the stone", "the stick")),
    ("tore", "torn", ("the paper", "the shirt", "the page")),
    ("wore", "worn", ("the hat", "the coat", "the boots")),
    ("rode", "ridden", ("the horse", "the bicycle", "the train")),
    ("shook", "shaken", ("the bottle", "the box", "the rug")),
    ("bit", "bitten", ("the apple", "the pencil", "the carrot")),
    ("froze", "frozen", ("the soup", "the bread", "the fish")),
    ("took", "taken", ("the bus", "the money", "the photo")),
)  # fmt: skip
# Participles used as adjectives, with nouns they describe. Left out: forms whose simple
# past is also an adjective or noun ("broke", "stole", "bit", "fell").
PARTICIPLE_ADJ = (
    ("written", "wrote", ("letter", "poem", "report")),
    ("hidden", "hid", ("key", "door", "letter")),
    ("torn", "tore", ("shirt", "page", "map")),
    ("worn", "wore", ("coat", "boots", "carpet")),
    ("frozen", "froze", ("lake", "pond", "fish")),
    ("chosen", "chose", ("book", "path", "gift")),
    ("shaken", "shook", ("bottle", "box")),
    ("forgotten", "forgot", ("letter", "key", "song")),
)  # fmt: skip
SEEING = ("found", "noticed", "saw", "photographed", "mentioned")
ISLAND_VERBS = ("visit", "call", "meet", "thank", "help", "warn", "greet", "follow")
ADJUNCT_VERBS = ("visiting", "calling", "meeting", "thanking", "helping", "warning", "greeting")
LEFT_BRANCH_VERBS = ("find", "borrow", "clean", "sell", "carry", "want")
NPI_VPS = (
    "visited the museum", "seen the ocean", "climbed the mountain", "read the book",
    "met the king", "tasted the soup", "played the piano", "ridden a horse", "won a prize",
    "broken a window", "lost a game", "cooked a meal",
)  # fmt: skip
PREDICATES = ("tired", "happy", "hungry", "busy", "late", "angry", "ready", "nervous", "early")
ANIMAL_PREDICATES = ("tired", "hungry", "happy", "noisy", "angry", "quiet", "cold", "scared")
# Verb forms (3rd singular, plural) that never coincide with a past tense ("read" does).
HABITS = (
    ("walks", "walk", "to the market"), ("cooks", "cook", "dinner"),
    ("visits", "visit", "the library"), ("cleans", "clean", "the kitchen"),
    ("plays", "play", "the piano"), ("sings", "sing", "in the choir"),
)  # fmt: skip
RELATIONAL = (
    ("friend", "friends"), ("sister", "sisters"), ("teacher", "teachers"),
    ("neighbor", "neighbors"), ("boss", "bosses"), ("cousin", "cousins"),
)  # fmt: skip
RC_VERBS = ("liked", "met", "visited", "helped", "called", "thanked")


# ---------------------------------------------------------------- paradigms
@dataclass(frozen=True)
class Paradigm:
    type: str
    subtype: str
    diff: str  # "sub1" | "sub2" | "move": how the two sentences differ (checked in tests)
    slots: tuple[Sequence, ...]
    render: Callable[..., tuple[str, str] | None]  # slot values -> (good, bad) or None

    def size(self) -> int:
        return prod(len(s) for s in self.slots)

    def combo(self, index: int) -> tuple:
        """The index-th slot combination (mixed radix), so combinations need no list."""
        out = []
        for s in reversed(self.slots):
            index, r = divmod(index, len(s))
            out.append(s[r])
        return tuple(reversed(out))


@dataclass(frozen=True)
class Pair:
    type: str
    subtype: str
    diff: str
    good: str
    bad: str


def _s(text: str, end: str = ".") -> str:
    return text[0].upper() + text[1:] + end


def _pair(good: str, bad: str, end: str = ".") -> tuple[str, str]:
    return _s(good, end), _s(bad, end)


def _refl(gender: str) -> str:
    return "himself" if gender == "m" else "herself"


def _pron(gender: str) -> str:
    return "him" if gender == "m" else "her"


GENDERED = tuple((sg, "m") for sg, _ in MALE) + tuple((sg, "f") for sg, _ in FEMALE)
GENDERED_PL = tuple((pl, "m") for _, pl in MALE) + tuple((pl, "f") for _, pl in FEMALE)
KIN = tuple((k, "m") for k in KIN_M) + tuple((k, "f") for k in KIN_F)


def _anaphor_gender(n, v):
    noun, g = n
    other = "f" if g == "m" else "m"
    return _pair(f"the {noun} {v} {_refl(g)}", f"the {noun} {v} {_refl(other)}")


def _anaphor_number(n, v, wrong):
    noun, g = n
    bad = _refl(g) if g in "mf" else wrong  # gendered plurals: only number differs
    return _pair(f"the {noun} {v} themselves", f"the {noun} {v} {bad}")


def _c_command(frame, head, other, v):
    (h, hg), (o, og) = head, other
    if hg == og:
        return None
    link = "of" if frame == "of" else "who met"
    s = f"the {h} {link} the {o} {v}"
    return _pair(f"{s} {_refl(hg)}", f"{s} {_refl(og)}")


def _domain(matrix, say, embedded, v):
    (m, mg), (e, eg) = matrix, embedded
    if mg == eg:
        return None
    s = f"the {m} {say} that the {e} {v}"
    return _pair(f"{s} {_pron(mg)}", f"{s} {_refl(mg)}")


RAISING = {"past": ("seemed", "appeared", "happened", "used"),
           "present": ("seems", "appears", "happens")}  # fmt: skip
CONTROL = {"past": ("tried", "wanted", "hoped", "refused", "decided", "promised"),
           "present": ("tries", "wants", "hopes", "refuses", "decides", "promises")}  # fmt: skip


def _subject_raising(tense, rv, cv, thing, loc):
    if rv >= len(RAISING[tense]):
        return None  # "there uses to be" does not exist
    rest = f"to be a {thing[0]} {loc}"
    return _pair(f"there {RAISING[tense][rv]} {rest}", f"there {CONTROL[tense][cv]} {rest}")


def _object_raising(p, good, bad, thing, loc):
    rest = f"there to be a {thing[0]} {loc}"
    return _pair(f"the {p} {good} {rest}", f"the {p} {bad} {rest}")


def _det(p, v, det, noun, adj=""):
    sg, pl = noun
    a = f"{adj} " if adj else ""
    good, bad = (sg, pl) if det in ("this", "that") else (pl, sg)
    return _pair(f"the {p} {v} {det} {a}{good}", f"the {p} {v} {det} {a}{bad}")


def _ellipsis(p1, p2, v, nums, adj, noun):
    if p1 == p2 or nums[0] == nums[1]:
        return None
    n1, n2 = nums
    good = f"the {p1} {v} {n1} {adj} {noun[1]} and the {p2} {v} {n2}"
    bad = f"the {p1} {v} {n1} {noun[1]} and the {p2} {v} {n2} {adj}"
    return _pair(good, bad)


def _no_gap(p1, m, p2, emb, obj):
    verb, objects = emb
    if p1 == p2:
        return None
    o = objects[obj]
    return _pair(f"the {p1} {m} that the {p2} {verb} {o}", f"the {p1} {m} what the {p2} {verb} {o}")


def _with_gap(p1, m, p2, emb):
    if p1 == p2:
        return None
    verb = emb[0]
    return _pair(f"the {p1} {m} what the {p2} {verb}", f"the {p1} {m} that the {p2} {verb}")


def _irregular_verb(p, verb, obj, when):
    past, part, objects = verb
    o = objects[obj]
    return _pair(f"the {p} {past} {o} {when}", f"the {p} {part} {o} {when}")


def _irregular_adj(p, see, part, noun):
    participle, past, nouns = part
    if noun >= len(nouns):
        return None
    n = nouns[noun]
    return _pair(f"the {p} {see} the {participle} {n}", f"the {p} {see} the {past} {n}")


def _adjunct(p1, v1, prep, v2, p2):
    if p1 == p2 or v2.startswith(v1[:4]):
        return None
    good = f"who did the {p1} {v1} {prep} {v2} the {p2}"
    bad = f"who did the {p1} {v1} the {p2} {prep} {v2}"
    return _pair(good, bad, "?")


def _wh_island(p1, verbs, p2, emb):
    if p1 == p2:
        return None
    bridge, island = verbs
    good = f"what did the {p1} {bridge} that the {p2} {emb[0]}"
    bad = f"what did the {p1} {island} whether the {p2} {emb[0]}"
    return _pair(good, bad, "?")


def _left_branch(p, v, noun):
    return _pair(f"whose {noun[0]} did the {p} {v}", f"whose did the {p} {v} {noun[0]}", "?")


def _negation(p, aux, adv, vp):
    return _pair(f"the {p} {aux} not ever {vp}", f"the {p} {aux} {adv} ever {vp}")


def _npi_present(p, aux, adv, vp):
    return _pair(f"the {p} {aux} {adv} {vp}", f"the {p} {aux} ever {vp}")


def _only(p, aux, vp):
    return _pair(f"only the {p} {aux} ever {vp}", f"even the {p} {aux} ever {vp}")


def _existential(number, tense, det, thing, loc):
    if number == "sg":
        be = "was" if tense == "past" else "is"
        good_det, bad_det = ("a", "one", "no")[det % 3], ("every", "each")[det // 3]
        noun = thing[0]
    else:
        if det >= 3:
            return None
        be = "were" if tense == "past" else "are"
        good_det, bad_det = ("some", "many", "no")[det], "most"
        noun = thing[1]
    return _pair(f"there {be} {good_det} {noun} {loc}", f"there {be} {bad_det} {noun} {loc}")


_BE = {("sg", "present"): ("is", "are"), ("pl", "present"): ("are", "is"),
       ("sg", "past"): ("was", "were"), ("pl", "past"): ("were", "was")}  # fmt: skip


def _sva_regular(frame, number, tense, noun, k):
    subj = noun[0] if number == "sg" else noun[1]
    if frame == "copula":
        good, bad = _BE[(number, tense)]
        pred = PREDICATES[k % len(PREDICATES)]
        return _pair(f"the {subj} {good} {pred}", f"the {subj} {bad} {pred}")
    if tense == "past" or k >= len(HABITS):
        return None  # habits are present tense only
    s3, base, comp = HABITS[k]
    good, bad = (s3, base) if number == "sg" else (base, s3)
    return _pair(f"the {subj} {good} {comp} every day", f"the {subj} {bad} {comp} every day")


def _sva_irregular(number, tense, noun, pred):
    subj = noun[0] if number == "sg" else noun[1]
    good, bad = _BE[(number, tense)]
    return _pair(f"the {subj} {good} {pred}", f"the {subj} {bad} {pred}")


def _sva_relational(number, tense, head, dep, pred):
    if number == "sg":  # singular head, plural distractor
        h, d = head[0], dep[1]
    else:
        h, d = head[1], dep[0]
    if h.rstrip("s") == d.rstrip("s"):
        return None
    good, bad = _BE[(number, tense)]
    return _pair(f"the {h} of the {d} {good} {pred}", f"the {h} of the {d} {bad} {pred}")


def _sva_relative(number, head, dep, v, pred):
    if head == dep:
        return None
    h, d = (head[0], dep[1]) if number == "sg" else (head[1], dep[0])
    good, bad = _BE[(number, "past")]
    return _pair(f"the {h} who the {d} {v} {good} {pred}", f"the {h} who the {d} {v} {bad} {pred}")


PARADIGMS: tuple[Paradigm, ...] = (
    Paradigm("anaphor_agreement", "anaphor_gender_agreement", "sub1",
             (GENDERED, REFLEXIVE_VERBS), _anaphor_gender),
    Paradigm("anaphor_agreement", "anaphor_number_agreement", "sub1",
             (GENDERED_PL + tuple((pl, "-") for _, pl in PEOPLE), REFLEXIVE_VERBS,
              ("himself", "herself")), _anaphor_number),
    Paradigm("argument_structure", "transitive", "sub1",
             (PERSON, TRANSITIVE, INTRANSITIVE, ARG_OBJECTS),
             lambda p, t, i, o: _pair(f"the {p} {t} the {o}", f"the {p} {i} the {o}")),
    Paradigm("argument_structure", "intransitive", "sub1",
             (PERSON, INTRANSITIVE, TRANSITIVE, TIMES),
             lambda p, i, t, w: _pair(f"the {p} {i} {w}", f"the {p} {t} {w}")),
    Paradigm("argument_structure", "passive", "sub1",
             (ARG_OBJECTS, TRANSITIVE, INTRANSITIVE, PERSON),
             lambda o, t, i, p: _pair(f"the {o} was {t} by the {p}",
                                      f"the {o} was {i} by the {p}")),
    Paradigm("binding", "principle_A_c_command", "sub1",
             (("of", "who"), KIN, GENDERED, REFLEXIVE_VERBS), _c_command),
    Paradigm("binding", "principle_A_domain", "sub1",
             (GENDERED, ("said", "thought", "knew", "believed"), GENDERED, REFLEXIVE_VERBS),
             _domain),
    Paradigm("control_raising", "existential_there_subject_raising", "sub1",
             (("past", "present"), range(4), range(6), THINGS, LOCS), _subject_raising),
    Paradigm("control_raising", "existential_there_object_raising", "sub1",
             (PERSON, ("expected", "wanted"),
              ("persuaded", "convinced", "forced", "told", "encouraged", "reminded"),
              THINGS, LOCS), _object_raising),
    Paradigm("determiner_noun_agreement", "determiner_noun_agreement", "sub1",
             (PERSON, OBJ_VERBS, ("this", "that", "these", "those"), OBJECTS), _det),
    Paradigm("determiner_noun_agreement", "determiner_noun_agreement_with_adjective", "sub1",
             (PERSON, OBJ_VERBS, ("this", "that", "these", "those"), OBJECTS, COLOR_ADJ), _det),
    Paradigm("determiner_noun_agreement", "determiner_noun_agreement_irregular", "sub1",
             (PERSON, ("saw", "noticed", "watched", "followed", "photographed"),
              ("this", "that", "these", "those"), IRREGULAR), _det),
    Paradigm("ellipsis", "ellipsis_n_bar", "move",
             (PERSON, PERSON, ("bought", "sold", "found", "carried", "cleaned", "painted"),
              (("two", "three"), ("three", "two"), ("two", "four"), ("four", "five"),
               ("three", "five"), ("five", "two")), SIZE_ADJ, OBJECTS), _ellipsis),
    Paradigm("filler_gap", "wh_vs_that_no_gap", "sub1",
             (PERSON, FG_MATRIX, PERSON, EMBEDDED, range(3)), _no_gap),
    Paradigm("filler_gap", "wh_vs_that_with_gap", "sub1",
             (PERSON, FG_MATRIX, PERSON, EMBEDDED), _with_gap),
    Paradigm("irregular_forms", "irregular_past_participle_verbs", "sub1",
             (PERSON, IRREGULAR_VERBS, range(3),
              ("yesterday", "last night", "this morning", "on Monday")), _irregular_verb),
    Paradigm("irregular_forms", "irregular_past_participle_adjectives", "sub1",
             (PERSON, SEEING, PARTICIPLE_ADJ, range(3)), _irregular_adj),
    Paradigm("island_effects", "adjunct_island", "move",
             (PERSON, ISLAND_VERBS, ("after", "before", "without"), ADJUNCT_VERBS, PERSON),
             _adjunct),
    Paradigm("island_effects", "wh_island", "sub2",
             (PERSON, (("say", "wonder"), ("think", "wonder"), ("say", "ask"),
                       ("believe", "wonder"), ("claim", "ask")), PERSON, EMBEDDED), _wh_island),
    Paradigm("island_effects", "left_branch_island_simple_question", "move",
             (PERSON, LEFT_BRANCH_VERBS, OBJECTS), _left_branch),
    Paradigm("npi_licensing", "sentential_negation_npi_licensor_present", "sub1",
             (PERSON, ("has", "had"), ("probably", "certainly", "really", "also"), NPI_VPS),
             _negation),
    Paradigm("npi_licensing", "npi_present", "sub1",
             (PERSON, ("has", "had"), ("often", "already", "recently"), NPI_VPS), _npi_present),
    Paradigm("npi_licensing", "only_npi_licensor_present", "sub1",
             (PERSON, ("has", "had"), NPI_VPS), _only),
    Paradigm("quantifiers", "existential_there_quantifiers", "sub1",
             (("sg", "pl"), ("past", "present"), range(6), THINGS, LOCS), _existential),
    Paradigm("subject_verb_agreement", "regular_plural_subject_verb_agreement", "sub1",
             (("copula", "habit"), ("sg", "pl"), ("present", "past"), PEOPLE,
              range(len(PREDICATES))), _sva_regular),
    Paradigm("subject_verb_agreement", "irregular_plural_subject_verb_agreement", "sub1",
             (("sg", "pl"), ("present", "past"), IRREGULAR, ANIMAL_PREDICATES), _sva_irregular),
    Paradigm("subject_verb_agreement", "distractor_agreement_relational_noun", "sub1",
             (("sg", "pl"), ("present", "past"), RELATIONAL, PEOPLE, PREDICATES),
             _sva_relational),
    Paradigm("subject_verb_agreement", "distractor_agreement_relative_clause", "sub1",
             (("sg", "pl"), PEOPLE, PEOPLE, RC_VERBS, PREDICATES), _sva_relative),
)  # fmt: skip

SKIPPED = {
    "quantifiers": "superlative_quantifiers (judgements on 'at least/at most' under "
    "negation vary between speakers)",
    "npi_licensing": "matrix_question_npi_licensor_present (its ungrammatical member would be "
    "a declarative question, which some speakers accept with 'ever'), only_npi_scope, "
    "sentential_negation_npi_scope",
    "island_effects": "complex_NP_island, coordinate_structure_constraint, "
    "sentential_subject_island (no one-word pairs)",
    "binding": "principle_A_case, principle_A_reconstruction",
    "control_raising": "tough_vs_raising, expletive_it_object_raising (semantic, not "
    "clearly ungrammatical, without BLiMP's careful verb classes)",
    "argument_structure": "animate_subject, causative, drop_argument, inchoative",
    "ellipsis": "ellipsis_n_bar_1",
    "filler_gap": "wh_questions_*, wh_vs_that_*_long_distance",
}


def words(sentence: str) -> list[str]:
    return re.findall(r"[a-z']+", sentence.lower())


def diff_kind(good: str, bad: str) -> str | None:
    """How two sentences differ: "sub1", "sub2", "move", or None (anything else)."""
    a, b = words(good), words(bad)
    if a == b or len(a) != len(b):
        return None
    if sorted(a) == sorted(b):
        return "move"
    return {1: "sub1", 2: "sub2"}.get(sum(x != y for x, y in zip(a, b, strict=True)))


def _candidates(p: Paradigm, ctx: BuildContext) -> Iterator[tuple[str, str]]:
    rng = ctx.rng("pairs", p.subtype)
    total = p.size()
    for i in rng.sample(range(total), min(total, MAX_DRAW)):
        r = p.render(*p.combo(i))
        if r is not None:
            yield r


def _stream(p: Paradigm, ctx: BuildContext) -> Iterator[Pair]:
    for good, bad in _candidates(p, ctx):
        yield Pair(p.type, p.subtype, p.diff, good, bad)


def candidates(ctx: BuildContext) -> dict[str, list[Iterator[Pair]]]:
    """Per type, one seeded stream of candidate pairs per paradigm (text only)."""
    return {t: [_stream(p, ctx) for p in PARADIGMS if p.type == t] for t in TYPES}


@dataclass
class Screened:
    """A candidate pair with its exact length (samples) in each voice."""

    pair: Pair
    good: list[int]
    bad: list[int]

    @property
    def score(self) -> float:
        return pair_score(self.good, self.bad)

    @property
    def mismatch(self) -> float:
        return mismatch(self.good, self.bad)


def select(screened: dict[str, list[list[Screened]]], quota: int) -> dict[str, list[Screened]]:
    """Pick ``quota`` pairs per type from screened candidates (a pure function of its input).

    Paradigms of a type take turns; at its turn a paradigm gives its first candidate (in
    the seeded order) that is within ``MAX_MISMATCH``, repeats no sentence of the subset,
    and keeps the length-only rule within the balance slack (``Balance.fits``); a paradigm
    with no such candidate passes. A type is short when a whole round gives nothing.
    """
    bal = Balance()
    seen: set[str] = set()
    out: dict[str, list[Screened]] = {}
    for t in TYPES:
        lists = screened[t]
        used = [[False] * len(c) for c in lists]
        taken: list[Screened] = []
        progress = True
        while len(taken) < quota and progress:
            progress = False
            for k, cands in enumerate(lists):
                if len(taken) == quota:
                    break
                for j, c in enumerate(cands):
                    g, b = c.pair.good.lower(), c.pair.bad.lower()
                    if used[k][j] or g in seen or b in seen or c.mismatch > MAX_MISMATCH:
                        continue
                    if bal.fits(t, c.score):
                        used[k][j] = True
                        seen.update((g, b))
                        bal.add(t, c.score)
                        taken.append(c)
                        progress = True
                        break
        out[t] = taken
    return out


def plan(ctx: BuildContext, voices: list[str]) -> list[dict[str, Any]]:
    """The subset's pairs (no audio), with their lengths: screen in rounds until full.

    Each round screens a few more candidates of every paradigm of the types that are
    still short, then selects again from everything screened so far.
    """
    quota = PER_TYPE[ctx.size]
    streams = candidates(ctx)
    screened = {t: [[] for _ in streams[t]] for t in TYPES}
    exhausted = {t: [False] * len(streams[t]) for t in TYPES}
    missing = dict.fromkeys(TYPES, quota)
    while True:
        batch: list[tuple[str, int, Pair]] = []
        for t, n in missing.items():  # about 1.25x what is missing, spread over the paradigms
            step = max(1, ceil(1.25 * n / len(streams[t])))
            for k, stream in enumerate(streams[t]):
                got = list(islice(stream, step))
                batch += [(t, k, pair) for pair in got]
                exhausted[t][k] = len(got) < step
        ctx.status(f"balancing durations: screening {len(batch)} pairs")
        utts = [Utterance.of(v, "text", s) for _, _, p in batch for s in (p.good, p.bad)
                for v in voices]  # fmt: skip
        lengths = iter(ctx.lengths(utts))
        for t, k, pair in batch:
            good = [next(lengths) for _ in voices]
            bad = [next(lengths) for _ in voices]
            screened[t][k].append(Screened(pair, good, bad))
        chosen = select(screened, quota)
        missing = {t: quota - len(chosen[t]) for t in TYPES if len(chosen[t]) < quota}
        if not missing:
            break
        stuck = [t for t in missing if all(exhausted[t])]
        if stuck:
            raise RuntimeError(
                f"syntactic: cannot fill {stuck} with {quota} duration-balanced pairs "
                f"(candidates exhausted)"
            )
    return [
        {"type": c.pair.type, "subtype": c.pair.subtype, "diff": c.pair.diff,
         "good": c.pair.good, "bad": c.pair.bad, "good_samples": c.good, "bad_samples": c.bad,
         "length_rule": c.score, "mismatch": c.mismatch}
        for t in TYPES for c in chosen[t]
    ]  # fmt: skip


class Syntactic(Subset):
    name = "syntactic"
    version = 2  # 2: duration-balanced pair selection, Piper on one thread
    outputs = (OUT,)
    description = "sBLIMP-style grammatical vs ungrammatical spoken sentences (ZR2021 layout)"

    def planned(self, size: str) -> int:
        return PER_TYPE[size] * len(TYPES) * VOICES[size] * 2

    def build(self, ctx: BuildContext) -> SubsetResult:
        voices = list(ctx.voices)[: VOICES[ctx.size]]
        pairs = ctx.memo("syntactic-plan", lambda: plan(ctx, voices))
        rows, todo = [], []
        for pair_id, pair in enumerate(pairs, 1):
            for k, v in enumerate(voices):
                for correct, text, n in (
                    (1, pair["good"], pair["good_samples"][k]),
                    (0, pair["bad"], pair["bad_samples"][k]),
                ):
                    name = stem(ctx.seed, "syntactic", pair_id, v, correct)
                    rel = f"{OUT}/{name}.wav"
                    if ctx.has(rel):
                        ctx.tick()
                    else:
                        todo.append((rel, n, Utterance.of(v, "text", text)))
                    rows.append({
                        "filename": name, "id": pair_id, "voice": v, "type": pair["type"],
                        "subtype": pair["subtype"], "transcription": text, "correct": correct,
                    })  # fmt: skip
        ctx.write_planned(todo)
        ctx.write_csv(f"{OUT}/gold.csv", rows)
        per_type = {t: sum(p["type"] == t for p in pairs) for t in TYPES}
        per_subtype: dict[str, int] = {}
        for p in pairs:
            per_subtype[p["subtype"]] = per_subtype.get(p["subtype"], 0) + 1
        table = "\n".join(
            f"| {t} | {per_type[t]} | "
            + ", ".join(f"{s.subtype} ({per_subtype.get(s.subtype, 0)}, {s.diff})"
                        for s in PARADIGMS if s.type == t)
            + " |"
            for t in TYPES
        )  # fmt: skip
        balance = {
            t: summary([p["length_rule"] for p in pairs if p["type"] == t],
                       [p["mismatch"] for p in pairs if p["type"] == t])
            for t in TYPES
        }  # fmt: skip
        balance["all"] = summary([p["length_rule"] for p in pairs], [p["mismatch"] for p in pairs])
        skipped = "\n".join(f"- {t}: {why}" for t, why in SKIPPED.items())
        ctx.write_text(f"{OUT}/README.md", CARD.format(
            size=ctx.size, seed=ctx.seed, pairs=len(pairs), per_type=PER_TYPE[ctx.size],
            voices=", ".join(voices), n_voices=len(voices), files=len(rows),
            table=table, skipped=skipped, n_paradigms=len(PARADIGMS),
            max_mismatch=round(100 * MAX_MISMATCH),
            balance="\n".join(balance_row(k, b) for k, b in balance.items())))  # fmt: skip
        return SubsetResult(
            {"pairs": len(pairs), "files": len(rows)},
            voices,
            {"pairs_per_type": per_type, "pairs_per_subtype": per_subtype,
             "duration_balance": balance},
        )  # fmt: skip


CARD = """\
# Built-in syntactic subset (sBLIMP-style), size {size}, seed {seed}

Layout: ZeroSpeech 2021 `syntactic/dev`: `*.wav` (16 kHz, 16-bit) and `gold.csv` with
`filename,id,voice,type,subtype,transcription,correct` (correct = 1 for the grammatical
sentence). The rows of one (id, voice) pair are adjacent, correct first, so the k-th
correct row pairs with the k-th incorrect row as the official scoring script pairs them.

How it was made
- {pairs} minimal pairs, {per_type} for each of the 12 ZR2021 phenomenon types, from
  {n_paradigms} hand-written paradigms (template + vocabulary lists, written for this
  project; not BLiMP's sentences or vocabulary). Slot combinations are drawn without
  replacement in a seeded order; no sentence occurs twice in the subset.
- How a pair differs: `sub1` one word replaced, `sub2` two words replaced, `move` the same
  words in another order (as BLiMP's ellipsis and island paradigms).
- Ungrammatical members were kept only where the violation is clear-cut in standard
  English; forms that are acceptable in a common dialect or usage (e.g. "he seen", "there
  were all ...", "the magician vanished the coin", "there was every reason") were left out.
- Voices: {voices}. Each pair is spoken by each of the {n_voices} voices, both members from
  text by the same voice. File names are opaque hashes. {files} files in all.
- Duration balance (from the audio durations alone; no model was consulted): in many
  paradigms one member is systematically longer ("him" / "himself", "not" / "probably",
  "themselves" / "himself"); on the previous (unbalanced) small build the rule "prefer
  the shorter file" scored 0.548 +- 0.021 overall and from 0.23 (anaphor agreement) to
  0.91 (quantifiers) by type. Candidate pairs are drawn as above, their exact durations
  in every voice computed first, and a pair is taken only if its two sentences differ by
  at most {max_mismatch}% in every voice and taking it keeps the length rule at chance:
  the running sum of (rule score - 0.5) within the type and over the whole set stays
  within 0.5 (the rule's score on a pair is the mean over voices of 1 / 0.5 / 0 for a
  shorter / equally long / longer grammatical sentence). Paradigms of a type take turns;
  at its turn a paradigm gives its first qualifying candidate. Where one member is nearly
  always longer, this changes which words a paradigm uses (in existential quantifiers the
  short good determiners "a" and "no" mostly drop out) and such paradigms supply fewer
  pairs (counts below). A model's own length measure (e.g. de-duplicated units) need not
  follow duration; run the `length-baseline` model next to any model. What the length
  rule scores on this build and the remaining mismatch (|good - bad| / shorter, per
  voice, median and max over pairs):

| type | pairs | length-rule accuracy | median mismatch | max mismatch |
| --- | --- | --- | --- | --- |
{balance}

| type | pairs | paradigms (pairs, difference) |
| --- | --- | --- |
{table}

All 12 types are covered. BLiMP paradigms not reproduced, by type:
{skipped}

What it can and cannot tell
- It measures whether a model assigns higher likelihood to grammatical than to minimally
  different ungrammatical spoken sentences, like sBLIMP. Numbers are not comparable with
  published sBLIMP scores: other sentences and vocabulary (small, mostly frequent words),
  fewer paradigms per type, fewer pairs, synthetic voices.
- Templates are regular: a model could partly learn them; the vocabulary is shared across
  types. In substitution pairs the swapped words differ in frequency (e.g. "arrived" vs
  "found"), as in BLiMP; sentence likelihoods therefore mix grammar and lexical frequency.
- The TTS front end reads each sentence with its own prosody (questions rise), and it may
  stress an ungrammatical sentence unnaturally; both effects are also present in sBLIMP,
  which was synthesised too.
"""
