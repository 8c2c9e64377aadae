"""Spoken StoryCloze-style subsets: ``sStoryCloze`` (fine-grained) and ``tStoryCloze`` (topic).

Five-sentence stories from hand-written topic templates with a causal structure:
setting -> goal or problem -> action -> consequence -> ending. Each topic has two
outcome branches (it goes well / it goes badly) with their own consequence and
ending sentences; the endings of the two branches are written in pairs of about the
same length. A story takes one branch, and its slots (names, pronouns, objects) are
filled by the seeded generator.

- sSC negative: the paired ending of the *other* branch, with the same names and
  objects: same topic, plausible on its own, contradicting the consequence.
- tSC negative: an ending of a *different* topic (either branch), with the story's own
  names and pronouns, of about the same length as the positive.

sSC and tSC use the same stories, the same voice per story and the same audio for the
positive (as the official sets share their stories). Audio: the four context
sentences and each ending are synthesised separately and joined with 250 ms of
silence, so the two files of a pair differ only after the context.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from math import prod

import numpy as np
import soundfile as sf

from ..balance import side
from ..context import BuildContext, Subset, SubsetResult
from ..synth import Utterance
from ..voices import SAMPLE_RATE

OUTS = ("sStoryCloze", "tStoryCloze")
STORIES = {"tiny": 4, "small": 100, "full": 500}
VOICES = {"tiny": 2, "small": 3, "full": 3}  # how many voices of the pool (in pool order)
GAP = np.zeros(int(0.25 * SAMPLE_RATE), dtype=np.float32)
PREFETCH = 16  # stories synthesised ahead in the worker processes

MALE_NAMES = ("Tom", "Jake", "Sam", "Ben", "Luke", "Omar", "Carlos", "Ravi", "Peter", "Mark",
              "Daniel", "Kevin")  # fmt: skip
FEMALE_NAMES = ("Anna", "Maria", "Emma", "Lucy", "Sara", "Nina", "Grace", "Julia", "Mia", "Kate",
                "Laura", "Priya")  # fmt: skip
PRONOUNS = {
    "m": {"he": "he", "He": "He", "his": "his", "His": "His", "him": "him", "himself": "himself"},
    "f": {"he": "she", "He": "She", "his": "her", "His": "Her", "him": "her", "himself": "herself"},
}


@dataclass(frozen=True)
class Topic:
    """One story schema. Sentences are ``str.format`` templates: {name}, {friend}, pronouns
    ({he} {He} {his} {His} {him} {himself}, written for a male protagonist) and the topic's
    own slots. ``up`` / ``down``: (consequences, endings) of the two branches; ``up`` ending
    i and ``down`` ending i are a pair of about the same length."""

    key: str
    setting: tuple[str, ...]
    goal: tuple[str, ...]
    action: tuple[str, ...]
    up: tuple[tuple[str, ...], tuple[str, ...]]
    down: tuple[tuple[str, ...], tuple[str, ...]]
    slots: tuple[dict[str, str], ...] = ({},)

    def skeletons(self) -> int:
        """Distinct contexts, names aside (setting, goal, action, branch, consequence, slots)."""
        return prod((len(self.setting), len(self.goal), len(self.action), 2,
                     len(self.up[0]), len(self.slots)))  # fmt: skip


TOPICS: tuple[Topic, ...] = (
    Topic(
        "baking",
        ("{name} loved spending Sunday afternoons in {his} kitchen.",
         "{name} had just moved into an apartment with a brand new oven."),
        ("{His} sister's birthday party was the next day.",
         "{He} wanted to bring something homemade to a party at work."),
        ("{He} found an old family recipe and decided to bake {dish}.",
         "{He} bought fresh ingredients and spent the evening making {dish}."),
        (("When it was done, {the_dish} looked and smelled perfect.",
          "{The_dish} came out of the oven golden, soft and sweet."),
         ("At the party, everyone asked {him} for the recipe.",
          "Everyone at the party loved {the_dish} and wanted more.")),
        (("{He} forgot to set a timer, and {the_dish} burned black.",
          "{The_dish} came out of the oven burnt, hard and bitter."),
         ("At the party, {he} served a cake from the store.",
          "{He} threw {the_dish} away and went to the party empty-handed.")),
        ({"dish": "a chocolate cake", "the_dish": "the cake", "The_dish": "The cake"},
         {"dish": "an apple pie", "the_dish": "the pie", "The_dish": "The pie"},
         {"dish": "a loaf of banana bread", "the_dish": "the bread", "The_dish": "The bread"}),
    ),
    Topic(
        "driving_test",
        ("{name} had been taking driving lessons for three months.",
         "{name} was nervous because {his} driving test was that morning."),
        ("{He} really wanted a license so {he} could drive to work.",
         "{He} needed a license to take the job {he} had been offered."),
        ("{He} had practiced parking with {friend} the night before.",
         "At the test, {he} checked the mirrors and drove off carefully."),
        (("The examiner smiled and said {he} had driven very well.",
          "{He} made no mistakes, and the examiner gave {him} a perfect score."),
         ("{He} drove home that evening with {his} new license.",
          "{He} called {his} parents to say {he} had passed the driving test.")),
        (("{He} drove through a red light, and the examiner stopped the test.",
          "{He} hit the curb twice, and the examiner ended the test early."),
         ("{He} booked another driving test and started practicing again.",
          "{He} called {his} parents to say {he} had failed the driving test.")),
    ),
    Topic(
        "lost_dog",
        ("{name} had a friendly little dog called {pet}.",
         "Every evening {name} took {his} dog {pet} for a walk in the park."),
        ("One day {pet} slipped out of the gate and ran away.",
         "One evening {pet} chased a squirrel and disappeared into the trees."),
        ("{name} searched the whole neighborhood and put up posters.",
         "{name} walked the streets for hours, calling out for {pet}."),
        (("Late that night, a neighbor called to say that {pet} was in her garden.",
          "At midnight {he} heard scratching at the door, and there was {pet}."),
         ("{name} hugged {pet} tightly and gave the dog a big dinner.",
          "{name} was so relieved to have {his} dog back home.")),
        (("After a whole week there was still no sign of {pet}.",
          "Days went by, and nobody had seen {pet} anywhere."),
         ("{name} sadly gave up hope of ever seeing {pet} again.",
          "{name} was heartbroken that {his} dog was gone for good.")),
        ({"pet": "Max"}, {"pet": "Buddy"}, {"pet": "Rosie"}),
    ),
    Topic(
        "exam",
        ("{name} was a student who had always found {subject} difficult.",
         "{name} had a big {subject} exam at the end of the week."),
        ("{He} needed a good grade to pass the class.",
         "{His} parents had promised {him} a trip if {he} did well."),
        ("{He} studied every night and asked {his} teacher for help.",
         "{He} formed a study group with {friend} and reviewed all the notes."),
        (("When the results came out, {he} had the highest score in the class.",
          "The questions were easy for {him}, and {he} finished early."),
         ("{He} got the best grade in {subject} for the first time.",
          "{He} was proud that all {his} studying had paid off.")),
        (("When the results came out, {he} had failed the exam.",
          "{He} slept through {his} alarm and missed the exam."),
         ("{He} had to take the {subject} exam again in the summer.",
          "{He} was sad that all {his} studying had not paid off.")),
        ({"subject": "math"}, {"subject": "history"}, {"subject": "chemistry"},
         {"subject": "biology"}),
    ),
    Topic(
        "garden",
        ("{name} had a small garden behind {his} house.",
         "{name} had always wanted to grow {his} own food."),
        ("In the spring {he} decided to plant {crop}.",
         "{He} hoped to grow enough {crop} to share with the neighbors."),
        ("{He} watered the plants every morning and pulled out the weeds.",
         "{He} read a book about gardening and built a fence to keep rabbits out."),
        (("By the end of the summer, the plants were full of {crop}.",
          "The weather was warm, and the {crop} grew big and healthy."),
         ("{He} gave a basket of {crop} to every neighbor.",
          "{He} decided to make the garden even bigger next year.")),
        (("A storm in July flattened the plants and ruined the {crop}.",
          "Insects ate the leaves, and the {crop} never grew."),
         ("{He} had to buy {crop} at the market as usual.",
          "{He} decided never to plant anything in the garden again.")),
        ({"crop": "tomatoes"}, {"crop": "carrots"}, {"crop": "strawberries"},
         {"crop": "pumpkins"}),
    ),
    Topic(
        "job_interview",
        ("{name} had been looking for work for several months.",
         "{name} had just finished school and needed a job."),
        ("{He} was invited to an interview at {workplace}.",
         "{He} saw an advertisement for a position at {workplace} and applied."),
        ("{He} bought a new suit and practiced answering questions.",
         "{He} read everything about the company and arrived early."),
        (("The manager liked {his} answers and shook {his} hand warmly.",
          "The interview went well, and the manager called {him} the next day."),
         ("{He} started {his} new job at {workplace} the following Monday.",
          "{He} celebrated getting the job with {his} friends.")),
        (("{He} was so nervous that {he} forgot most of {his} answers.",
          "The manager said they had already hired someone else."),
         ("{He} went back to searching the job listings every day.",
          "{He} told {his} friends that {he} did not get the job.")),
        ({"workplace": "a bank"}, {"workplace": "a hospital"}, {"workplace": "a bookstore"},
         {"workplace": "a hotel"}),
    ),
    Topic(
        "camping",
        ("{name} and {friend} had planned a camping trip to {place}.",
         "{name} loved sleeping outdoors, so {he} planned a trip to {place}."),
        ("{He} packed the tent, the sleeping bags and plenty of food.",
         "{He} checked the weather, and it was supposed to be sunny all weekend."),
        ("{He} drove to {place} and set up the tent in a quiet spot.",
         "{He} hiked for hours until {he} found a perfect campsite."),
        (("The sky stayed clear, and {he} watched the stars all night.",
          "{He} cooked dinner over the fire and slept peacefully."),
         ("{He} promised to go camping again the next summer.",
          "{He} came home from the camping trip happy and rested.")),
        (("That night a storm broke, and the tent filled with water.",
          "{He} realized {he} had forgotten the tent poles at home."),
         ("{He} gave up on camping and went home at midnight.",
          "{He} came home from the camping trip cold and miserable.")),
        ({"place": "the mountains"}, {"place": "the lake"}, {"place": "the forest"},
         {"place": "the coast"}),
    ),
    Topic(
        "race",
        ("{name} had never been much of a runner.",
         "{name} wanted to get fit after a long winter."),
        ("{He} signed up for {race} in the spring.",
         "{His} friend {friend} convinced {him} to enter {race}."),
        ("{He} trained every morning for three months.",
         "{He} followed a strict training plan and ate healthy food."),
        (("On race day {he} felt strong and ran the whole way.",
          "{He} kept a steady pace and crossed the finish line smiling."),
         ("{He} hung the race medal proudly on {his} wall.",
          "{He} signed up for another race the next week.")),
        (("Halfway through the race {he} hurt {his} ankle and had to stop.",
          "On race day {he} caught a bad cold and could not run."),
         ("{He} watched the other runners finish from the side.",
          "{He} decided that running was not for {him}.")),
        ({"race": "a marathon"}, {"race": "a ten kilometer race"}, {"race": "a charity run"}),
    ),
    Topic(
        "surprise_party",
        ("{name}'s best friend {friend} was about to turn thirty.",
         "{name} knew that {friend} had been feeling lonely lately."),
        ("{He} decided to throw {friend} a surprise party.",
         "{He} wanted to do something special for {friend}'s birthday."),
        ("{He} secretly invited all of their friends and decorated {his} apartment.",
         "{He} booked a table at a restaurant and told everyone to keep quiet."),
        (("When {friend} walked in, everyone jumped up and shouted surprise.",
          "{friend} had no idea, and the surprise worked perfectly."),
         ("{friend} thanked {him} for the best birthday ever.",
          "{friend} laughed and hugged everyone at the party.")),
        (("Someone told {friend} about the plan a week before.",
          "{friend} got sick that day and could not come."),
         ("{name} was disappointed that the surprise was ruined.",
          "{name} cancelled the party and sent everyone home.")),
    ),
    Topic(
        "fishing",
        ("{name} went fishing with {his} grandfather every summer.",
         "{name} had just bought a new fishing rod."),
        ("This year {he} wanted to catch a fish all by {himself}.",
         "{He} wanted to catch a big fish to show {his} family."),
        ("{He} got up before sunrise and rowed out onto the lake.",
         "{He} sat patiently on the pier with {his} line in the water."),
        (("After an hour, {he} felt a strong pull and reeled in a huge trout.",
          "By noon {he} had caught five fish."),
         ("That evening the family ate the fish {he} had caught.",
          "{He} took a photo of {his} catch to show everyone.")),
        (("{He} waited all day, but not a single fish bit.",
          "The line snapped, and the only fish {he} hooked swam away."),
         ("That evening the family had to eat pasta instead of fish.",
          "{He} went home with an empty bucket and a sunburn.")),
    ),
    Topic(
        "new_school",
        ("{name} had just moved to a new town with {his} family.",
         "{name} started at a new school in the middle of the year."),
        ("{He} did not know anyone and felt very lonely.",
         "{He} was shy and hoped to make some friends."),
        ("{He} joined the school soccer team.",
         "{He} sat next to a classmate called {friend} at lunch."),
        (("Soon {friend} and the others invited {him} to play every weekend.",
          "{He} found that {he} shared many hobbies with {friend}."),
         ("By the end of the year {he} had many friends at school.",
          "{He} told {his} parents that {he} loved the new school.")),
        (("The other children ignored {him} and never talked to {him}.",
          "{friend} made fun of {his} accent in front of everyone."),
         ("By the end of the year {he} still had no friends at school.",
          "{He} begged {his} parents to move back to the old town.")),
    ),
    Topic(
        "repair",
        ("{name} rode {his} {vehicle} to work every day.",
         "{name} had owned the same {vehicle} for ten years."),
        ("One morning the {vehicle} made a strange noise and stopped.",
         "One day the {vehicle} would not start at all."),
        ("{He} watched some repair videos and took it apart in the garage.",
         "{He} bought the parts {he} needed and tried to fix it {himself}."),
        (("After a few hours, the {vehicle} worked like new.",
          "{He} found the broken part and replaced it easily."),
         ("{He} rode the {vehicle} to work the next morning.",
          "{He} was proud that {he} had fixed the {vehicle} alone.")),
        (("{He} lost a small part, and the {vehicle} got even worse.",
          "After a whole weekend, the {vehicle} still would not move."),
         ("{He} left the {vehicle} in the garage and took the bus.",
          "{He} finally paid a mechanic to fix the {vehicle}.")),
        ({"vehicle": "motorcycle"}, {"vehicle": "scooter"}, {"vehicle": "old motorbike"}),
    ),
    Topic(
        "painting",
        ("{name} had loved painting since {he} was a child.",
         "{name} spent all of {his} free time painting."),
        ("{He} heard about an art contest in {his} town.",
         "{His} teacher encouraged {him} to enter a painting competition."),
        ("{He} worked on a picture of {scene} for weeks.",
         "{He} painted {scene} and carefully framed the picture."),
        (("The judges loved it and gave {him} the first prize.",
          "{His} painting was chosen as the best in the contest."),
         ("The painting now hangs in the town hall.",
          "{He} used the prize money to buy new brushes.")),
        (("The judges barely looked at {his} painting.",
          "{His} painting was damaged in the rain on the way there."),
         ("{He} took the painting home, ashamed of it.",
          "{He} did not win the art contest and went home sad.")),
        ({"scene": "the old harbor"}, {"scene": "a field of sunflowers"},
         {"scene": "the town square"}),
    ),
    Topic(
        "lost_wallet",
        ("{name} was shopping at a busy market downtown.",
         "{name} took the train into the city to buy a present."),
        ("When {he} went to pay, {he} realized {his} wallet was gone.",
         "At the register {he} noticed that {his} wallet was missing."),
        ("{He} retraced {his} steps and asked every shop for help.",
         "{He} hurried back to the places {he} had visited that morning."),
        (("A shop owner had found the wallet and kept it safe for {him}.",
          "{He} found the wallet lying under a bench with nothing missing."),
         ("{He} put the wallet in {his} pocket and finished {his} shopping.",
          "{He} was happy that nothing was missing from {his} wallet.")),
        (("Nobody had seen it, and the wallet was never found.",
          "{He} found the wallet in a trash can, but the money was gone."),
         ("{He} had to go home with no wallet and no shopping.",
          "{He} had to cancel all of {his} bank cards.")),
    ),
    Topic(
        "concert",
        ("{name}'s favorite band was coming to town.",
         "{name} had loved the same band since high school."),
        ("Tickets for the concert went on sale on Friday morning.",
         "{He} wanted to get concert tickets for {himself} and {friend}."),
        ("{He} set an alarm and waited online before the sale started.",
         "{He} stood in line outside the ticket office all night."),
        (("{He} managed to buy two tickets in the front row.",
          "{He} was one of the first and got two good seats."),
         ("{He} and {friend} danced all night at the concert.",
          "{He} told {friend} that they had tickets for the concert.")),
        (("The tickets sold out in two minutes, before {he} could buy any.",
          "When {he} reached the front, the tickets were all sold out."),
         ("{He} and {friend} listened to the concert on the radio.",
          "{He} told {friend} that there were no tickets left.")),
    ),
    Topic(
        "swimming",
        ("{name} had always been afraid of deep water.",
         "{name} never learned to swim as a child."),
        ("{He} wanted to be able to swim with {his} kids at the beach.",
         "{His} friends were planning a trip to the beach that summer."),
        ("{He} signed up for swimming lessons at the local pool.",
         "{He} went to the pool every evening with an instructor."),
        (("After a few weeks {he} could swim across the whole pool.",
          "Slowly {he} lost {his} fear and learned to float and kick."),
         ("That summer {he} swam happily in the sea.",
          "{He} was proud that {he} had finally learned to swim.")),
        (("Even after many lessons, {he} could not put {his} face in the water.",
          "{He} panicked in the deep end and quit after the second lesson."),
         ("That summer {he} stayed on the sand while others swam.",
          "{He} was sad that {he} still could not swim.")),
    ),
    Topic(
        "selling",
        ("{name} was saving money to buy a new bicycle.",
         "{name} was ten years old and wanted a new bicycle."),
        ("{He} decided to sell {product} in front of {his} house.",
         "{He} came up with the idea of selling {product} to the neighbors."),
        ("{He} made a colorful sign and set up a table by the street.",
         "{He} spent the whole morning getting everything ready with {his} mother."),
        (("It was a hot day, and people lined up to buy from {him}.",
          "By the afternoon {he} had sold everything and earned a lot of money."),
         ("Soon {he} had enough money for the bicycle.",
          "{He} decided to sell {product} again the next weekend.")),
        (("It rained all day, and nobody stopped at {his} table.",
          "Only one neighbor came by all day, and left without buying anything."),
         ("{He} was still far from having enough for the bicycle.",
          "{He} decided never to sell {product} again.")),
        ({"product": "lemonade"}, {"product": "cookies"}, {"product": "homemade jam"}),
    ),
    Topic(
        "flight",
        ("{name} had an important meeting in another city.",
         "{name} was flying to visit {his} grandmother for the holidays."),
        ("{His} flight left at eight in the morning.",
         "{He} had to be at the airport by seven o'clock."),
        ("{He} set two alarms and packed {his} bag the night before.",
         "{He} called a taxi and left the house in a hurry."),
        (("The roads were empty, and {he} arrived with plenty of time.",
          "{He} got through security quickly and reached the gate early."),
         ("{He} relaxed in {his} seat as the plane took off.",
          "{His} plane landed right on time that afternoon.")),
        (("The taxi got stuck in heavy traffic for an hour.",
          "At the airport, {he} realized {he} had forgotten {his} passport."),
         ("{He} watched {his} plane take off without {him}.",
          "{He} had to book a later flight the next day.")),
    ),
    Topic(
        "piano",
        ("{name} had been learning the piano for two years.",
         "{name} practiced the piano every day after school."),
        ("{His} teacher asked {him} to play at the spring recital.",
         "{He} was chosen to play a solo at the school concert."),
        ("{He} practiced the piece for hours every evening.",
         "{He} played the piece for {his} family every night to prepare."),
        (("On the night of the concert, {he} played every note perfectly.",
          "{He} played beautifully, and the audience listened in silence."),
         ("The audience gave {him} a standing ovation.",
          "{His} piano teacher told {him} it was {his} best performance ever.")),
        (("On the night of the concert, {he} forgot the music halfway through.",
          "{His} hands shook so much that {he} missed many notes."),
         ("{He} ran off the stage in tears.",
          "{His} piano teacher told {him} to practice more before playing again.")),
    ),
    Topic(
        "painting_room",
        ("{name} thought {his} bedroom looked dull and old.",
         "{name} had just bought {his} first house."),
        ("{He} decided to paint the walls {color}.",
         "{He} wanted to paint a room {color} before {his} parents visited."),
        ("{He} bought brushes and paint and covered the floor with old sheets.",
         "{He} spent the whole weekend painting with the windows open."),
        (("When {he} finished, the room looked bright and fresh.",
          "The new color made the room look bigger and warmer."),
         ("{He} invited {his} friends over to see the painted room.",
          "{He} was very happy with how the room turned out.")),
        (("The paint dried in ugly streaks, and the walls looked worse than before.",
          "{He} had bought the wrong paint, and it peeled off within days."),
         ("{He} had to hire a painter to do it again.",
          "{He} was very unhappy with how the room turned out.")),
        ({"color": "blue"}, {"color": "yellow"}, {"color": "green"}, {"color": "light gray"}),
    ),
)  # fmt: skip


# Topics close enough that an ending of one could fit a story of the other: never used as
# each other's tSC foils.
RELATED = (("baking", "surprise_party"), ("driving_test", "exam"), ("exam", "new_school"),
           ("painting", "painting_room"), ("concert", "piano"), ("camping", "fishing"),
           ("race", "swimming"))  # fmt: skip


def unrelated(a: str, b: str) -> bool:
    return a != b and (a, b) not in RELATED and (b, a) not in RELATED


@dataclass
class Story:
    index: int
    topic: str
    branch: str  # "up" | "down"
    context: list[str]
    positive: str
    ssc_negative: str
    tsc_negative: str
    tsc_topic: str
    voice: str = ""
    key: tuple = field(default=(), repr=False)


def _render(template: str, values: dict[str, str]) -> str:
    s = template.format(**values)
    return s[0].upper() + s[1:]


def _values(rng, topic: Topic, slot: int) -> dict[str, str]:
    gender = rng.choice("mf")
    name = rng.choice(MALE_NAMES if gender == "m" else FEMALE_NAMES)
    friend = rng.choice([n for n in MALE_NAMES + FEMALE_NAMES if n != name])
    return {"name": name, "friend": friend, **PRONOUNS[gender], **topic.slots[slot]}


def capacity() -> int:
    """How many distinct stories (contexts, names aside) the templates give."""
    return sum(t.skeletons() for t in TOPICS)


def make_stories(ctx: BuildContext) -> list[Story]:
    """The subset's stories (no audio): topics in a seeded round-robin, no context twice."""
    n = min(STORIES[ctx.size], capacity())
    order = list(TOPICS)
    ctx.rng("topics").shuffle(order)
    used: set[tuple] = set()
    per_topic = dict.fromkeys((t.key for t in TOPICS), 0)
    stories: list[Story] = []
    i = 0
    while len(stories) < n:
        topic = order[i % len(order)]
        i += 1
        if per_topic[topic.key] >= topic.skeletons():
            continue
        rng = ctx.rng("story", topic.key, per_topic[topic.key])
        while True:  # next unused skeleton of this topic (seeded, exhaustive)
            key = (topic.key, rng.randrange(len(topic.setting)), rng.randrange(len(topic.goal)),
                   rng.randrange(len(topic.action)), rng.choice(("up", "down")),
                   rng.randrange(len(topic.up[0])), rng.randrange(len(topic.slots)))  # fmt: skip
            if key not in used:
                break
        used.add(key)
        per_topic[topic.key] += 1
        _, s, g, a, branch, c, slot = key
        values = _values(rng, topic, slot)
        other = "down" if branch == "up" else "up"
        consequences, endings = getattr(topic, branch)
        e = rng.randrange(len(endings))
        context = [_render(t, values) for t in (topic.setting[s], topic.goal[g],
                                                 topic.action[a], consequences[c])]  # fmt: skip
        positive = _render(endings[e], values)
        ssc_negative = _render(getattr(topic, other)[1][e], values)
        # tSC: an ending of an unrelated topic, with this story's names and pronouns.
        foils = []
        for t in TOPICS:
            if not unrelated(t.key, topic.key):
                continue
            for b in ("up", "down"):
                for tmpl in getattr(t, b)[1]:
                    v = {**t.slots[rng.randrange(len(t.slots))], **values}
                    foils.append((t.key, _render(tmpl, v)))
        length = len(positive.split())
        near = [f for f in foils if abs(len(f[1].split()) - length) <= 1]
        tsc_topic, tsc_negative = rng.choice(near or foils)
        stories.append(Story(len(stories), topic.key, branch, context, positive, ssc_negative,
                             tsc_negative, tsc_topic, key=key))  # fmt: skip
    return stories


def _needed(ctx: BuildContext, st: Story, files: dict[str, str]) -> list[str]:
    """The sentences ``build`` will synthesise for this story (none if its files exist)."""
    endings = list(dict.fromkeys(text for rel, text in files.items() if not ctx.has(rel)))
    return [*st.context, *endings] if endings else []


def _story_json(st: Story, negative: str, extra: dict) -> str:
    return json.dumps({"id": st.index, "topic": st.topic, "voice": st.voice,
                       "context": st.context, "positive": st.positive, "negative": negative,
                       **extra}, ensure_ascii=False)  # fmt: skip


class StoryCloze(Subset):
    name = "storycloze"
    version = 2  # 2: Piper on one thread; the card reports the length-only rule
    outputs = OUTS
    description = "Spoken StoryCloze-style stories: true vs contradicting / off-topic ending"

    def planned(self, size: str) -> int:
        return min(STORIES[size], capacity()) * 2 * len(OUTS)

    def build(self, ctx: BuildContext) -> SubsetResult:
        stories = make_stories(ctx)
        voices = list(ctx.voices.values())[: VOICES[ctx.size]]
        files: dict[int, dict[str, str]] = {}
        for st in stories:
            st.voice = voices[st.index % len(voices)].info.name
            files[st.index] = {
                f"sStoryCloze/{st.index}_correct.wav": st.positive,
                f"sStoryCloze/{st.index}_incorrect.wav": st.ssc_negative,
                f"tStoryCloze/{st.index}_correct.wav": st.positive,
                f"tStoryCloze/{st.index}_incorrect.wav": st.tsc_negative,
            }
        for i, st in enumerate(stories):
            if i % PREFETCH == 0:  # synthesise the next block of stories in the workers
                ctx.prefetch(
                    Utterance(s.voice, "text", text)
                    for s in stories[i : i + PREFETCH]
                    for text in _needed(ctx, s, files[s.index])
                )
            v = ctx.voices[st.voice]
            todo = {rel: text for rel, text in files[st.index].items() if not ctx.has(rel)}
            if todo:
                parts = []
                for sentence in st.context:
                    parts += [v.text(sentence), GAP]
                context = np.concatenate(parts)
                endings: dict[str, np.ndarray] = {}
                for rel, text in todo.items():
                    if text not in endings:
                        endings[text] = v.text(text)
                    ctx.write_wav(rel, np.concatenate([context, endings[text]]))
            ctx.tick(len(files[st.index]))
        ssc = "\n".join(_story_json(st, st.ssc_negative, {}) for st in stories)
        tsc = "\n".join(_story_json(st, st.tsc_negative, {"negative_topic": st.tsc_topic})
                        for st in stories)  # fmt: skip
        ctx.write_text("sStoryCloze/stories.jsonl", ssc + "\n")
        ctx.write_text("tStoryCloze/stories.jsonl", tsc + "\n")
        n = len(stories)
        per_topic = {t.key: sum(st.topic == t.key for st in stories) for t in TOPICS}
        common = {
            "size": ctx.size, "seed": ctx.seed, "stories": n, "files": 2 * n,
            "voices": ", ".join(v.info.name for v in voices), "n_topics": len(TOPICS),
            "capacity": capacity(),
            "topics": textwrap.fill(", ".join(f"{k} {c}" for k, c in per_topic.items()), 88,
                                    initial_indent="  ", subsequent_indent="  "),
        }  # fmt: skip
        # The endings are matched in words, not in duration: measure what length alone gets.
        length_rule = {}
        for folder in OUTS:
            sides = []
            for st in stories:
                c, i = (sf.info(str(ctx.path(f"{folder}/{st.index}_{k}.wav"))).frames
                        for k in ("correct", "incorrect"))  # fmt: skip
                sides.append(side(c, i))
            length_rule[folder] = round(sum(sides) / len(sides), 4)
        common["length_rule"] = ", ".join(f"{k} {v:.3f}" for k, v in length_rule.items())
        ctx.write_text("sStoryCloze/README.md", CARD_SSC.format(**common) + CARD_COMMON.format(
            **common))  # fmt: skip
        ctx.write_text("tStoryCloze/README.md", CARD_TSC.format(**common) + CARD_COMMON.format(
            **common))  # fmt: skip
        return SubsetResult(
            {"stories": n, "files": 4 * n},
            [v.info.name for v in voices],
            {"stories_per_topic": per_topic, "capacity": capacity(),
             "length_rule_accuracy": length_rule},
        )  # fmt: skip


CARD_SSC = """\
# Built-in sStoryCloze-style subset, size {size}, seed {seed}

Layout: Spoken StoryCloze: `<index>_correct.wav` (the story with its coherent ending) and
`<index>_incorrect.wav` (the same story with a contradicting ending), 16 kHz, 16-bit;
`stories.jsonl` holds the text (id, topic, voice, context, positive, negative).

Negative ending (fine-grained): every topic has two outcome branches (it goes well / it
goes badly), each with its own consequence sentence and endings; endings are written in
pairs of about the same length across the branches. The negative is the paired ending of
the other branch, with the same names and objects: same topic and style, plausible on its
own, but contradicting the story's fourth sentence.
"""

CARD_TSC = """\
# Built-in tStoryCloze-style subset, size {size}, seed {seed}

Layout: Topic StoryCloze: `<index>_correct.wav` (the story with its coherent ending) and
`<index>_incorrect.wav` (the same story with an ending from an unrelated story), 16 kHz,
16-bit; `stories.jsonl` holds the text (id, topic, voice, context, positive, negative,
negative_topic).

Negative ending (topic): an ending of an unrelated topic (either branch; topics close to
each other, e.g. baking and a surprise party, are never paired), rendered with the
story's own protagonist (name, pronouns) so that names do not give it away, and chosen to
be within one word of the positive's length where possible.
"""

CARD_COMMON = """
How it was made
- {stories} five-sentence stories (setting, goal or problem, action, consequence,
  ending) from {n_topics} hand-written topic templates (written for this project, not the
  ROCStories / StoryCloze texts), each with two variants of the first three sentences, two
  consequences per branch and a few object slots; names (12 male, 12 female) and the
  protagonist's gender are drawn by the seeded generator. No context is used twice (names
  aside: two stories differ in more than names). The templates give {capacity} distinct
  contexts, so this is not padded with repeats. Stories per topic:
{topics}
- sStoryCloze and tStoryCloze share the stories, the voices and the positive files, as the
  official sets share their stories.
- Audio: each of the four context sentences and the ending is synthesised separately and
  joined with 250 ms of silence; the context audio is the same in both files of a pair, so
  they differ only in the ending. Voices alternate over stories: {voices}. {files} files in
  all.

What it can and cannot tell
- It measures whether a model prefers the coherent ending, like Spoken StoryCloze (sSC:
  consistency with the story's events; tSC: staying on topic). Numbers are not comparable
  with published sSC / tSC scores: simpler, template-made stories with a small vocabulary,
  one reading voice per story (synthetic, not the official voice), silences between
  sentences instead of natural reading, and far fewer stories.
- Stories of one topic share most of their wording, and the decisive cue in sSC is a single
  consequence sentence; a model that learned these templates could score well without
  general story understanding.
- Endings are matched in word count (within three words; tSC within one where possible),
  not in duration. The rule "prefer the shorter file" scores, on this build: {length_rule}
  (0.5 = no length cue; on the small build, seed 0: sSC 0.51 +- 0.05, tSC 0.55 +- 0.05,
  so no clear cue, but not balanced either). Run the `length-baseline` model next to any
  model to see it.
"""
