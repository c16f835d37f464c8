"""Small text helpers shared by retrieval, answering and verification: words, numbers, stems."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

# A sentence ending so does not end there: "… popular MLLMs, e.g. LLaVA …" is one sentence.
ENDS_IN_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|vs|cf|et al|w\.r\.t)\.$", re.IGNORECASE)


def _english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words, kept as a data file: importing scikit-learn for them took 1.2 s of every
    command's start."""
    text = (resources.files("rag") / "data" / "stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


STOPWORDS: frozenset[str] = _english_stop_words() | {
    "paper", "papers", "propose", "proposed", "proposes", "approach", "approaches", "method", "methods",
    "based", "using", "use", "used", "new", "novel", "work", "study", "studies", "does", "did", "doing",
    "make", "makes", "way", "ways", "s", "t", "vs", "etc", "e.g", "i.e", "et", "al", "compared",
}  # fmt: skip

_NUMBER = re.compile(
    r"(?<![\w.])(\d+(?:[.,]\d+)*)\s*(%|x\b|×|times\b|fold\b|k\b|m\b|b\b|gb\b|ms\b|tb\b)?", re.IGNORECASE
)
_WORD = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*|\d+(?:\.\d+)?")


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """Strip a suffix, then keep six letters: 'improve', 'improving' and 'improvement' all give 'improv'."""
    if any(ch.isdigit() for ch in word):
        return word
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= (3 if suffix == "s" else 4):
            word = word[: -len(suffix)]
            break
    return word[:6]


_CONTRACTED = re.compile(r"\b\w+n['’]t\b|['’](?:ll|ve|re|d|m)\b", re.IGNORECASE)


def uncontracted(text: str) -> str:
    """The text without its contractions, which carry no meaning but a negation: "when it doesn't fit" → "when it
    fit" (its words read "doesn" as a word no abstract writes, and an answer said "it never mentions “doesn”")."""
    return _CONTRACTED.sub(" ", text)


def content_words(text: str) -> set[str]:
    """Stemmed words of the text that carry meaning (no stop words, no one-letter tokens, no contractions); a name
    written in mixed case is whole (compounds): 'MobileVLM' is not 'mobile'."""
    text = uncontracted(text)
    whole = compounds(text)
    return {w if w in whole else stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


_VERSIONED = re.compile(r"\b([a-z]{3,})\d")


_COMPOUND = re.compile(r"\b[A-Za-z]*[a-z][A-Z][A-Za-z]*\b")


def compounds(text: str) -> set[str]:
    """The names a text writes in mixed case that a stem would cut to another word, whole and lower-cased: 'mobilevlm'
    of 'MobileVLM' (its stem is 'mobile', as of every paper on phones), 'internvl' of 'InternVL' ('intern', as of
    'internal')."""
    return {w for w in map(str.lower, _COMPOUND.findall(text)) if len(w) > 6 and stem(w) != w}


def word_key(word: str) -> str:
    """One word as content_words holds it: stemmed, or whole when it is a name in mixed case."""
    return word.lower() if compounds(word) else stem(word.lower())


def families(text: str) -> set[str]:
    """The names a text gives with a version, stemmed without it: 'qwen' of 'Qwen2-VL' and 'Qwen1.5-1.8B', 'llama' of
    'LLaMA3'. A paper's words include them, for a researcher asks which papers use Qwen; a question's do not, for one
    version names no other ('float16' is not 'float8')."""
    return {stem(name) for name in _VERSIONED.findall(text.lower())}


def paper_words(text: str) -> set[str]:
    """A paper's content words, and the names it gives with a version, without it (families)."""
    return content_words(text) | families(text)


def numbers(text: str) -> set[str]:
    """Numbers in the text, normalised ('1,000' → '1000', '2.0' → '2')."""
    out = set()
    for match in _NUMBER.finditer(text):
        value = match.group(1).replace(",", "")
        try:
            out.add(f"{float(value):g}")
        except ValueError:
            continue
    return out


_QUANTITY = re.compile(
    r"\b(how (much|many|fast|large|big|long|small|often|well)|what (speed-?up|throughput|accuracy|latency|"
    r"percentage|fraction|share|factor|improvement|reduction|gain|size|number|score|rate|mfu|energy|"
    r"power|cost)|by what (factor|margin|percentage)|how large|what\b[^?]{0,30}\b(score|accuracy|"
    r"speed-?up|throughput|latency|percentage|rate|mfu|utili[sz]ation|efficiency|gain|improvement|reduction))\b",
    re.IGNORECASE,
)
# "how many <head> were ...", "what <head> does ...": the words naming the asked-for quantity.
_HEAD = re.compile(
    r"\b(?:how many|how much|what(?: is the| was the| are the)?)\s+((?:[\w-]+\s+){0,3}?[\w-]+?)"
    r"(?=\s+(?:does|do|did|is|are|was|were|can|could|would|will|has|have|had|of|in|on|for|to|with|when|"
    r"and|or|over|compared|than|at)\b|[?,]|$)",
    re.IGNORECASE,
)
_MEASURE_WORDS = {"score", "number", "amount", "value", "level", "total", "overall", "average", "typical"}
# NOTE: and comparatives, which the quantity follows: "How much higher is Zero Bubble's throughput …?"
_NOT_HEADS = {"fraction", "share", "percentage", "factor", "faster", "slower", "better", "worse", "more", "less",
              "long", "higher", "lower", "larger", "smaller", "bigger", "greater", "cheaper", "fewer"}  # fmt: skip
# A head word is also matched by these spellings and units.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "speedup": ("speed", "faster", "acceler", "times", "×"),
    "speed": ("speedup", "faster", "token/s", "tokens/s", "/s"),
    "acceleration": ("acceler", "speedup", "faster"),
    "second": ("/s", "per second", "tokens/s"),
    "power": ("watt", "mw", "power", "consum"),
    "improvement": ("improv", "better", "higher", "gain", "increase", "outperform"),
    "increase": ("increas", "improv", "higher", "gain"),
    "gain": ("gain", "improv", "better", "higher", "increas", "outperform"),
    "reduction": ("reduc", "fewer", "less", "lower", "sav", "cut"),
    "saving": ("sav", "reduc", "fewer", "less", "lower"),
    "cost": ("cost", "$", "dollar", "usd", "cheaper"),
    "hour": ("hour", "day", "minute"),
    "gpu": ("gpu", "a100", "h100", "v100"),
    "compute": ("flop", "comput"),
    "memory": ("memory", "gb", "footprint"),
}
_WORD_FIGURE = re.compile(r"\b(half|twice|double[sd]?|triple[sd]?|quadruple[sd]?|\w+fold|one-third)\b", re.IGNORECASE)


_NAME = re.compile(r"(?<!^)(?<![.?!]\s)\b([A-Z][\w-]*[A-Z0-9][\w-]*|[A-Z][a-z]+[\w-]*)\b")


def names(text: str) -> list[str]:
    """Capitalised words past the start of the text: system and model names ("FastMoE", "Minitron")."""
    return [m for m in _NAME.findall(text) if m.lower() not in STOPWORDS and len(m) > 2]


def verbs_of_names(text: str) -> set[str]:
    """The verbs a name takes after "does", "did", "can", … ("How does Splitwise handle …" gives "handle"), lower-cased:
    how the question asks, not what it asks for."""
    out = set()
    for name in names(text):
        subject = rf"(?:the\s+)?{re.escape(name)}(?:['’]s\s+[\w-]+)?"
        out.update(re.findall(rf"\b(?i:does|do|did|can|could|will|would)\s+{subject}\s+([a-z]+)\b", text))
    return out


def coined(name: str) -> bool:
    """Whether a name is coined, with a capital past its first letter or a digit ("FastMoE", "1F1B"), not a word that
    opens a sentence ("Roman")."""
    return bool(re.search(r"[A-Z0-9]", name[1:]))


_TOKEN = re.compile(r"(?<![\w-])[A-Za-z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*")


def system_names(text: str) -> list[str]:
    """The names a text gives a system, model or method: mixed case or letters with digits ("PipeDream", "vLLM",
    "FlashAttention-3", "H100"), wherever they stand, less a describing suffix ("MuZero-style" gives "MuZero") and a
    plural's "s" ("DSLs"). Not acronyms ("GPU", "SFT"), which abstracts spell out, nor words joined to them
    ("chat-AI")."""
    out = []
    for token in _TOKEN.findall(text):
        parts = token.split("-")
        while len(parts) > 1 and parts[-1].isalpha() and parts[-1].islower():
            parts.pop()
        name = re.sub(r"(?<=[A-Z0-9])s$", "", "-".join(parts))
        mixed = re.search(r"[a-z]", name) and re.search(r"[A-Z]", name[1:])
        if not (parts[0].isalpha() and parts[0].islower()) and (mixed or re.search(r"\d", name)):
            out.append(name)
    return out


def quantity_heads(question: str) -> list[list[str]]:
    """Per asked-for quantity, the content words that name it ("how many GPUs" → [["gpu"]])."""
    heads = []
    for match in _HEAD.finditer(question):
        words = [w for w in re.findall(r"[a-z0-9][a-z0-9-]*", match.group(1).lower()) if w not in STOPWORDS]
        words = [w for w in words if w not in _NOT_HEADS]
        if len(words) > 1:
            words = [w for w in words if w not in _MEASURE_WORDS]
        if words:
            heads.append([stem(w) for w in words])
    return heads


def mentions(sentence: str, head: list[str]) -> bool:
    """Whether a sentence speaks of the quantity: most head words, by prefix or a known synonym."""
    lowered = sentence.lower()
    words = {stem(w) for w in _WORD.findall(lowered)}

    def found(head_word: str) -> bool:
        if any(w.startswith(head_word[:5]) if len(head_word) >= 5 else w == head_word for w in words):
            return True
        return any(
            syn in lowered for key, syns in _SYNONYMS.items() if head_word.startswith(stem(key)[:5]) for syn in syns
        )

    # NOTE: in "training cost" the quantity is the cost; "training" alone would match any sentence.
    return found(head[-1]) or (len(head) >= 3 and sum(map(found, head)) >= 2 * len(head) / 3)


_MANY = re.compile(
    r"\b(which|what|any|list|compare|find|show|recommend|suggest|looking\s+for|are\s+there|is\s+there)\b.{0,40}"
    r"\b(papers|works?|research|literature|studies|surveys|approaches|methods|systems|techniques|benchmarks|tools"
    r"|frameworks|ones)\b"
    r"|^\W*(?:\w+[\s-]+){0,2}(papers|works?|research|literature|studies|surveys)\b"
    r"|\bany\s+(?:other\s+)?(?:paper|study|survey|benchmark|method|approach|system|technique)\b"
    r"|\bwhich of them\b",
    re.IGNORECASE,
)


def asks_for_many(question: str) -> bool:
    """Whether the question asks for several papers: "which papers ...", "what approaches ...", "find work on ...",
    "is there research on ...", "does any paper ...", or a request that opens with what it wants ("Survey papers
    on ...")."""
    return bool(_MANY.search(question))


def asks_for_quantity(question: str) -> bool:
    """Whether the question asks for a figure (a speed-up, a count, a percentage)."""
    return bool(_QUANTITY.search(question))


_GREEK_MACROS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "theta": "θ", "lambda": "λ", "mu": "μ",
    "pi": "π", "sigma": "σ", "tau": "τ", "phi": "φ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Omega": "Ω",
}  # fmt: skip
_MACROS = {"times": "×", "sim": "~", "approx": "≈", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "eg": "e.g.",
           "ie": "i.e.", "etal": "et al.", "%": "%", "&": "&", "_": "_"} | _GREEK_MACROS  # fmt: skip
_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303"}  # combining marks
_SUPERSCRIPT = str.maketrans("0123456789+-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻")


def plain(text: str) -> str:
    """LaTeX left in an abstract as a reader would write it: '2.4\\times' and '2times' → '2.4×' and '2×',
    'leq 4B' → '≤ 4B', 'na\\"ive' → 'naïve', 'sim!2times' and 'sim75\\%' → '~2×' and '~75%', '{\\Lambda}' → 'Λ',
    'M^{3}ViT' → 'M³ViT', '{De}coupled' → 'Decoupled', 'Models~(MLLMs)' → 'Models (MLLMs)', '``what"' → '“what”'.
    English is left alone: '2.4 times', 'sometimes', 'sim2real'."""
    accented = re.sub(r"""\\(["'`^~])\{?([A-Za-z])\}?""", lambda m: m.group(2) + _ACCENTS[m.group(1)], text)
    text = unicodedata.normalize("NFC", accented)
    # NOTE: "sim" left of a figure that lost its backslash: 'sim75\\%' (Dynamic-LLaVA), not 'sim2real'
    figure = r"(?:\s?!\s?(?=\d)|(?=\d+(?:\.\d+)?\s?(?:\\?%|×|x\b|times)))"
    text = re.sub(rf"\\sim\s*!?\s*|(?<![A-Za-z])sim{figure}", "~", text)
    text = re.sub(r"(\d)(?:\s?\\times|times)\b", r"\1×", text)
    # NOTE: and a bound that lost its backslash: 'models with leq 4B parameters' (BlueLM-V-3B)
    text = re.sub(r"(?<![\\A-Za-z])(leq|geq)\s?(?=\d)", lambda m: f"{_MACROS[m.group(1)]} ", text)
    text = re.sub(r"\^\{?([0-9+-]+)\}?", lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    text = re.sub(r"\\([A-Za-z]+|[%&_])", lambda m: _MACROS.get(m.group(1), m.group(1)), text)
    text = re.sub(r"\{([^\W\d_][^{}]*)\}", r"\1", text)  # NOTE: BibTeX's case guards, not sets like {0, 1}
    text = re.sub(r"``([^`'\"]+)(?:''|\")", r"“\1”", text)  # NOTE: TeX's quotes: ARMOR's ``what or how to generate"
    return re.sub(r"(?<=[A-Za-z])~(?=[A-Z(\[])", " ", text)


# NOTE: "its" and "their" too ("However, their large parameter sizes present …" read "Their large parameter sizes …"
# once a cell or a review dropped its "However,"), and "the gap" or "the problem" that a purpose clause names without
# saying which ("To mitigate the gap, …"; not "To address the challenges of training …")
_LEANS = re.compile(
    r"^(however|moreover|furthermore|additionally|in addition|as a result|therefore|thus|hence|consequently|"
    r"to (address|tackle|solve|overcome) (this|these|that|them|such)|"
    r"to (address|tackle|solve|overcome|mitigate|bridge|close|fill) the (gap|problem|issue|challenge)s?(?! of\b)|"
    r"based on (this|these)|this|these|it|its|they|their|such)\b",
    re.IGNORECASE,
)


def leans_on_previous(sentence: str) -> bool:
    """Whether a sentence opens by pointing back ("However, …", "To address these challenges, …", "It …")."""
    return bool(_LEANS.match(sentence.strip()))


# A sentence that says how many things follow and no more: "The design of Redco emphasizes two key aspects.", "In this
# work, we contribute in three significant ways." (6 of the bundled abstracts' 1,414 sentences). Quoted alone it read as
# a promise the quote breaks: a blind judge found "two key aspects" followed by one (thirty-fourth session).
_ANNOUNCES = re.compile(
    r"\b(?:two|three|four|five|six|several|a few|multiple|the following)\s+(?:[\w-]+\s+){0,2}?(?:ways|aspects|"
    r"contributions|perspectives|scenarios|parts|components|steps|stages|directions|questions|challenges|"
    r"recommendations|objectives|areas|phases|levels|innovations|folds?|respects|dimensions|findings|insights|lessons|"
    r"highlights|features|techniques|strategies|modules|principles)\b(?:\s+(?!such\b|including\b|like\b)[\w-]+){0,5}"
    r"\s*[.!]$",
    re.IGNORECASE,
)
ANNOUNCES_WORDS = 16  # longer, a sentence says more than a count


def announces(sentence: str) -> bool:
    """Whether a sentence only announces a list that the sentences after it give ("… in three significant ways.")."""
    text = sentence.strip()
    return len(text.split()) <= ANNOUNCES_WORDS and bool(_ANNOUNCES.search(text))


# A list's item after its first: "(II) Improving the performance with given budgets.", "(3) Strong Performance: …"
_LIST_ITEM = re.compile(r"^\(?(?:ii|iii|iv|vi{0,3}|ix|x|[2-9]|[b-h])\)\s", re.IGNORECASE)


def continues_list(sentence: str) -> bool:
    """Whether a sentence is an item of a list the sentence before it began ("(2) For training data, …")."""
    return bool(_LIST_ITEM.match(sentence.strip()))


_LINK = re.compile(r"https?://|\bgithub\b|\bhugging ?face\b", re.IGNORECASE)
_ASKS_FOR_LINK = re.compile(
    r"\b(github|repo|repository|download|url|website|hugging ?face|(source|the|their|its) code|code release)\b"
    r"|\bwhere (can|do|could) (i|we|one) (get|find)\b|\b(is|are) (the )?(code|weights|models?|data(set)?) "
    r"(available|released|public|open)\b|\b(released|available|public|open[- ]sourced?)\s*\?\s*$",
    re.IGNORECASE,
)


LINKS = re.compile(r"https?://\S+|www\.\S+|\b[\w.-]+\.(?:com|org|net|io|ai|co)/\S*", re.IGNORECASE)


def without_links(text: str) -> str:
    """The text with its links blanked: a link's words ("…/zero-bubble-pipeline-parallelism") are no claim."""
    return LINKS.sub(" ", text)


def points_elsewhere(sentence: str) -> bool:
    """Whether a sentence gives a link (where the code, data or models are) rather than a finding."""
    return bool(_LINK.search(sentence))


def asks_for_link(question: str) -> bool:
    """Whether a question asks where to get something: code, data, weights, a link."""
    return bool(_ASKS_FOR_LINK.search(question))


# A question that asks what a method gives up: "What are the drawbacks of GPipe?", "What's the catch with Zero
# Bubble?". Not "catch" as a verb ("catch bugs") nor a trade-off studied for itself is asked the same way, but a
# trade-off a method makes is.
_ASKS_FOR_LIMITS = re.compile(
    r"\b(?:limitations?|drawbacks?|downsides?|weakness(?:es)?|shortcomings?|disadvantages?|pitfalls?|caveats?|cons)\b"
    r"|\b(?:the|a|any) catch\b|\bfalls? short\b|\b(?:give|gives|giving) up\b|\btrade-?offs?\b",
    re.IGNORECASE,
)
# The words such a question asks with, which are not what it asks about (an abstract that states GPipe's limit never
# calls it a "drawback").
LIMIT_WORDS = frozenset(
    stem(w)
    for w in ("limitation", "limitations", "drawback", "downside", "weakness", "weaknesses", "shortcoming",
              "disadvantage", "pitfall", "caveat", "cons", "catch", "fall", "falls", "short", "give", "gives",
              "giving", "trade", "off", "tradeoff", "tradeoffs")
)  # fmt: skip
# Words with which an abstract states a limitation of its own or of the work before it (the comparison's limitations
# column reads the same).
LIMITATION_CUES = (
    r"limitation",
    r"limited to",
    r"drawback",
    r"future work",
    r"trade-?off",
    r"at the cost of",
    r"does not",
    r"do not",
    r"cannot",
    r"fails? to",
    r"only (?:applies|works|supports)",
    r"caveat",
    r"open (?:problem|question)",
    r"remains? (?:unclear|open|challenging)",
    r"degrad",
    r"sacrific",
)
_STATES_LIMIT = re.compile(r"\b(?:" + "|".join(LIMITATION_CUES) + r")", re.IGNORECASE)


def asks_for_limits(question: str) -> bool:
    """Whether a question asks for what a method gives up: its limitations, drawbacks, trade-offs."""
    return bool(_ASKS_FOR_LIMITS.search(question))


def without_limit_words(question: str) -> str:
    """The question less its words that ask for limitations: what it asks about, for search ("the limitations of
    DeMo" found a paper on "LLMs' limitations" before DeMo)."""
    return re.sub(r"\s+", " ", _ASKS_FOR_LIMITS.sub(" ", question)).strip()


def states_limit(sentence: str) -> bool:
    """Whether a sentence states a limitation, by its words (LIMITATION_CUES)."""
    return bool(_STATES_LIMIT.search(sentence))


def has_figure(text: str) -> bool:
    """Whether a sentence states a figure beyond years and list markers."""
    if _WORD_FIGURE.search(text):
        return True
    for match in _NUMBER.finditer(text):
        value, unit = match.group(1), match.group(2)
        if unit or "." in value or (value.isdigit() and not (1900 <= int(value) <= 2100) and int(value) > 1):
            return True
    return False


@lru_cache(maxsize=1)
def token_counter() -> Callable[[str], list[int]]:
    """tiktoken's cl100k_base encoder, from llama-index's bundled cache (works offline)."""
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer()


def count_tokens(text: str) -> int:
    return len(token_counter()(text))
