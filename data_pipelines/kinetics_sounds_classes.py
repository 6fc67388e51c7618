"""The Kinetics-Sounds classes: the Kinetics classes that can be both seen and heard.

Source: R. Arandjelović and A. Zisserman, "Look, Listen and Learn", ICCV 2017, section 4
(arXiv:1705.08168): 34 Kinetics classes chosen to be potentially manifested both visually and
aurally. The paper names them as in a pre-release Kinetics (PAPER_CLASSES). The released
Kinetics-400 renamed four of them and does not have three (typing, fingerpicking, patting), so a
Kinetics-400 download gives the 31 classes of CLASS_NAMES, the set later audio-visual papers call
Kinetics-Sounds (e.g. OGM-GE, CVPR 2022). manifest_converters.kinetics_sounds keeps the rows of
these classes.
"""

# The paper's 34 classes → their Kinetics-400 names (None: not a Kinetics-400 class).
KINETICS_400_NAMES = {
    "blowing nose": "blowing nose",
    "blowing out": "blowing out candles",
    "bowling": "bowling",
    "chopping wood": "chopping wood",
    "dribbling ball": "dribbling basketball",
    "fingerpicking": None,
    "laughing": "laughing",
    "mowing the lawn by pushing lawnmower": "mowing lawn",
    "patting": None,
    "playing accordion": "playing accordion",
    "playing bagpipes": "playing bagpipes",
    "playing bass guitar": "playing bass guitar",
    "playing clarinet": "playing clarinet",
    "playing drums": "playing drums",
    "playing guitar": "playing guitar",
    "playing harmonica": "playing harmonica",
    "playing keyboard": "playing keyboard",
    "playing organ": "playing organ",
    "playing piano": "playing piano",
    "playing saxophone": "playing saxophone",
    "playing trombone": "playing trombone",
    "playing trumpet": "playing trumpet",
    "playing violin": "playing violin",
    "playing xylophone": "playing xylophone",
    "ripping paper": "ripping paper",
    "shoveling snow": "shoveling snow",
    "shuffling cards": "shuffling cards",
    "singing": "singing",
    "stomping": "stomping grapes",
    "tap dancing": "tap dancing",
    "tapping guitar": "tapping guitar",
    "tapping pen": "tapping pen",
    "tickling": "tickling",
    "typing": None,
}
PAPER_CLASSES = tuple(KINETICS_400_NAMES)
CLASS_NAMES = tuple(sorted(name for name in KINETICS_400_NAMES.values() if name))  # 31
assert len(PAPER_CLASSES) == 34 and len(CLASS_NAMES) == 31
