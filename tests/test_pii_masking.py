"""PII masking on chat-style messages: one test per entity type (lower case, no punctuation, typos,
several values in one message), and what must stay (intent words, amounts, times, plan names).

The sentences here are written for these tests; benchmarks/pii_corpus.py has its own templates.
"""

from __future__ import annotations

import random
import re

import pandas as pd
import pytest

from config import PROJECT_ROOT
from intent_pipeline.pii import registry
from intent_pipeline.pii.engine import get_masker, mask_then_truncate, truncate_masked
from intent_pipeline.text import clean_text


def masked(masker, text: str) -> str:
    return masker.mask(clean_text(text)).text


def assert_masked(masker, text: str, value: str, placeholder: str) -> None:
    out = masked(masker, text)
    assert placeholder in out, out
    rest = text.replace(value, " ").lower()
    for part in re.findall(r"\w{2,}", value):  # no word of the value survives (unless the text has it elsewhere)
        if re.search(rf"(?<![\w]){re.escape(part.lower())}(?![\w])", rest):
            continue
        assert not re.search(rf"(?<![\w]){re.escape(part)}(?![\w])", out, re.IGNORECASE), (part, out)


CASES = {
    "[ADDRESS]": [
        ("pls send the new one to 48 kingsley road instead", "48 kingsley road"),
        ("moved house, now at flat 2b 19 elm grove", "flat 2b 19 elm grove"),
        ("my adress is 1620 W Oak Ave Apt 12", "1620 W Oak Ave Apt 12"),
        ("livraison au 7 rue des lilas svp", "7 rue des lilas"),
        ("bitte an lindenstraße 14 schicken", "lindenstraße 14"),
        ("deliver it to calle alcalá 88 please", "calle alcalá 88"),
        ("please post it to via garibaldi 3", "via garibaldi 3"),
        ("ship to avenida atlântica 1702", "avenida atlântica 1702"),
    ],
    "[POSTCODE]": [
        ("postcode is m1 1ae", "m1 1ae"),
        ("its SW1A 2AA not what you have", "SW1A 2AA"),
        ("zip 94107-1234", "94107-1234"),
        ("my postal code is K1A 0B1", "K1A 0B1"),
        ("eircode D02 X285", "D02 X285"),
        ("zip code 60614", "60614"),
        ("new address 10 rue de rivoli, 75001 paris", "75001"),
    ],
    "[PERSON]": [
        ("hi im priya raman and my parcel is late", "priya raman"),
        ("this is siobhan o'sullivan from accounts", "siobhan o'sullivan"),
        ("order placed by Pieter van der Merwe last week", "Pieter van der Merwe"),
        ("my name is maria de la cruz", "maria de la cruz"),
        ("the courier yusuf left it outside", "yusuf"),
        ("can i speak to mrs fitzgerald", "fitzgerald"),
        ("i am tariq al-hashimi", "tariq al-hashimi"),
    ],
    "[EMAIL]": [
        ("write to me at lena.koch at gmail dot com", "lena.koch at gmail dot com"),
        ("its brandon(at)fastmail.com", "brandon(at)fastmail.com"),
        ("contact: ops@northwind-traders.co.uk", "ops@northwind-traders.co.uk"),
    ],
    "[PHONE]": [
        ("call me on +1 415 555 0132", "+1 415 555 0132"),
        ("my number is (415) 555-0132", "(415) 555-0132"),
        ("ring 07911 123456 after 5", "07911 123456"),
        ("uk mobile +44 7911 123456", "+44 7911 123456"),
        ("meine nummer 030 12345678", "030 12345678"),
        ("de: +49 151 23456789", "+49 151 23456789"),
        ("fr 06 12 34 56 78 svp", "06 12 34 56 78"),
        ("+33 1 42 68 53 00 is the office", "+33 1 42 68 53 00"),
        ("in: 098765 43210", "098765 43210"),
        ("whatsapp +91 98765 43210", "+91 98765 43210"),
        ("au mobile 0412 345 678", "0412 345 678"),
        ("+61 2 9374 4000 landline", "+61 2 9374 4000"),
        ("ie: 087 123 4567", "087 123 4567"),
        ("+353 87 123 4567 is my cell", "+353 87 123 4567"),
        ("toronto office 416 967 1111", "416 967 1111"),
        ("movil 612 34 56 78", "612 34 56 78"),
        ("cellulare 312 345 6789", "312 345 6789"),
        ("mobiel 06 12345678", "06 12345678"),
        ("london office 020 7946 0958", "020 7946 0958"),
    ],
    "[DATE_OF_BIRTH]": [
        ("dob 04/11/1988", "04/11/1988"),
        ("i was born on 3rd march 1975", "3rd march 1975"),
        ("date of birth: 1990-07-21", "1990-07-21"),
    ],
    "[BANK_ACCOUNT]": [
        ("refund into acct 40308669 please", "40308669"),
        ("my account number is 0012 3456 7890", "0012 3456 7890"),
    ],
    "[SORT_CODE]": [("sort code 20-45-77", "20-45-77"), ("sortcode 204577", "204577")],
    "[ROUTING_NUMBER]": [("routing number 021000021", "021000021")],
    "[IBAN]": [("iban de44 5001 0517 5407 3249 31", "de44 5001 0517 5407 3249 31")],
    "[CREDIT_CARD]": [("card no 4111 1111 1111 1111 expired", "4111 1111 1111 1111")],
    "[SECURITY_CODE]": [
        ("the cvv is 382", "382"),
        ("pin 4471 doesnt work", "4471"),
        ("otp 739154 expired already", "739154"),
        ("verifcation code 55 12 90", "55 12 90"),
    ],
    "[PASSPORT]": [("passport no 533380006", "533380006"), ("pasport number C01X00T47", "C01X00T47")],
    "[DRIVING_LICENCE]": [("driving licence MORGA753116SM9IJ", "MORGA753116SM9IJ"),
                          ("drivers license D1234567", "D1234567")],
    "[NATIONAL_ID]": [("national insurance QQ 12 34 56 C", "QQ 12 34 56 C"),
                      ("aadhaar 2345 6789 0123", "2345 6789 0123")],
    "[TAX_ID]": [("vat no GB123 4567 89", "GB123 4567 89"), ("our ein is 12-3456789", "12-3456789"),
                 ("USt-IdNr DE136695976", "DE136695976")],
    "[TRACKING_NUMBER]": [("ups 1Z999AA10123456784 hasnt moved", "1Z999AA10123456784"),
                          ("tracking no 9400111899223456789012", "9400111899223456789012"),
                          ("royal mail RR123456785GB", "RR123456785GB")],
    "[USERNAME]": [("my username is dj_kettle88", "dj_kettle88"), ("user id: m.ortega", "m.ortega"),
                   ("dm me @sunny_side_up", "@sunny_side_up")],
    "[ID]": [("customer id 88213409 here", "88213409"), ("serial AB7734QX9", "AB7734QX9")],
}


# Typed: each value must come out with its own placeholder, never the default [ID].
TYPED = {
    "[POSTCODE]": [
        ("uk: deliver to ls6 2ab", "ls6 2ab"),
        ("postcode is EC1A 1BB thanks", "EC1A 1BB"),
        ("zip 30301", "30301"),
        ("my zip is 30301-4412 not 30302", "30301-4412"),
        ("postal code m5v 3l9 toronto", "m5v 3l9"),
        ("eircode t12 x70a", "t12 x70a"),
        ("its vico lungo 4, 80134 napoli", "80134"),
        ("new address is 7 kerkstraat 2000 antwerpen", "2000"),
        ("ship to 221 mg road, bengaluru 560001", "560001"),
        ("wrong address on file, its 3 elm road postcode 61518", "61518"),
    ],
    "[PHONE]": [
        ("us: call me at +1 212 555 0147", "+1 212 555 0147"),
        ("us national (212) 555-0147", "(212) 555-0147"),
        ("uk intl +44 7911 234567", "+44 7911 234567"),
        ("uk national 07911 234567", "07911 234567"),
        ("de intl +49 30 901820", "+49 30 901820"),
        ("de national 0151 23456789", "0151 23456789"),
        ("fr intl +33 6 98 76 54 32", "+33 6 98 76 54 32"),
        ("fr national 06 98 76 54 32", "06 98 76 54 32"),
        ("in intl +91 99876 54321", "+91 99876 54321"),
        ("in national 099876 54321", "099876 54321"),
        ("au intl +61 412 987 654", "+61 412 987 654"),
        ("au national 0412 987 654", "0412 987 654"),
        ("my parcel 1Z999AA10123456784 is late, call me on +447911234567", "+447911234567"),
        ("tracking 9400111899223456789012 hasnt moved, ring me on 01512 3417763", "01512 3417763"),
    ],
}


@pytest.mark.parametrize("placeholder,text,value", [(p, t, v) for p, cases in TYPED.items() for t, v in cases])
def test_postcodes_and_phones_get_their_own_placeholder(masker, placeholder: str, text: str, value: str) -> None:
    result = masker.mask(clean_text(text))
    start = clean_text(text).index(value)
    own = [e for e in result.entities if e.start <= start and e.end >= start + len(value)]
    assert own and registry.PLACEHOLDERS[own[0].entity_type] == placeholder, result.text


TOWNS = [
    ("i live in swindon now", "swindon"),
    ("we moved to stratford upon avon last year", "stratford upon avon"),
    ("based in kilkenny, need help with an order", "kilkenny"),
    ("deliver to 12 high st, harrogate please", "harrogate"),
    ("new address is 8 mill lane harrogate hg1 2ab", "harrogate"),
    ("new address is 8 mill lane hg1 2ab harrogate", "harrogate"),
    ("its vico lungo 4, 80134 napoli", "napoli"),
    ("ship to 5 ward ride 1316 mooremouth", "mooremouth"),
    ("update my address to 9 oak knolls suite 7, port ellis, h2e 7y8", "port ellis"),
    ("the parcel should go to via grisoni 7, castel san pietro 40024 not the billing one", "castel san pietro"),
]


@pytest.mark.parametrize("text,town", TOWNS)
def test_lower_case_towns_after_cues_and_next_to_addresses(masker, text: str, town: str) -> None:
    out = masked(masker, text)
    assert town not in out and "[LOCATION]" in out, out


# Off-topic chat (small talk, other languages, slang, gibberish) has no names in it: spaCy's small
# model reads some of it as a PERSON. The first rows are from data/eval/off_topic.csv, the rest
# written for this test.
NOT_NAMES = [
    "lol ok",
    "ciao come stai",
    "bnmbnmbnm vcx",
    "tu connais une bonne recette de crêpes ?",
    "git says detached HEAD what do i do",
    "blah blah blah",
    "AAAAAAAHHHHHHH",
    "je voudrais une pizza avec du fromage",
    "ja ja ja",
    "hasta luego amigo",
    "qwrtpsd zzzz",
    "i live in hope",
]


@pytest.mark.parametrize("text", NOT_NAMES)
def test_off_topic_chat_is_not_masked(masker, text: str) -> None:
    assert masked(masker, text) == clean_text(text)


def test_lower_case_names_without_capitals_are_still_masked(masker) -> None:
    for text, name in [("hi im priya raman", "raman"), ("ok thanks john", "john"),
                       ("sarah connolly here, where is my parcel", "connolly"),
                       ("hola me llamo carlos garcia", "garcia")]:
        out = masked(masker, text)
        assert name not in out and "[PERSON]" in out, out


@pytest.mark.parametrize("placeholder,text,value", [(p, t, v) for p, cases in CASES.items() for t, v in cases])
def test_each_entity_type_in_chat_form(masker, placeholder: str, text: str, value: str) -> None:
    assert_masked(masker, text, value, placeholder)


def test_several_values_in_one_lower_case_message_without_punctuation(masker) -> None:
    out = masked(masker, "hi im jonas weber my new adress is 22 birch lane leeds ls6 2ab "
                         "and my number is 07911 654321 email jonas dot weber at outlook dot com")
    for value in ("jonas", "weber", "22 birch", "ls6", "654321", "outlook"):
        assert value not in out.lower(), out
    assert {"[PERSON]", "[ADDRESS]", "[POSTCODE]", "[PHONE]", "[EMAIL]"} <= set(re.findall(r"\[[A-Z_]+\]", out))


def test_surname_after_a_masked_first_name_is_masked_too(masker) -> None:
    for text in ("Thanks, Aoife connolly", "this is Aoife connolly", "Regards, Aoife Connolly"):
        out = masked(masker, text)
        assert "connolly" not in out.lower() and "aoife" not in out.lower(), out


KEPT = [
    "I want to cancel my order and get a refund.",
    "Please switch me to the Premium plan.",
    "Is the Pro plan cheaper than Standard?",
    "i was charged $49.99 twice",
    "refund of 120 eur please",
    "can you deliver between 10:30 and 14:00 tomorrow",
    "i need 2 more items in size 10",
    "my order is 3 days late",
    "how do i reset my password",
    "what is your returns policy for shoes",
    "hi there can i track my parcel",
    "i am trying to update my payment method",
    "this is urgent please help",
    "for my wife and kids",
    "the delivery driver was very rude",
    "i would like to speak to an agent",
    "my username is not working",
    "can i pay in 3 instalments of 33.33 gbp",
    "upgrade me to the gold plan for $12 a month",
    "i want the platinum tier, not basic",
    "refund 49.99 usd for the order by 10:30 tomorrow",
    "2 items arrived 3 days late, is there 15% off",
    "my postcode changed, how do i update my address",
    "i live in a flat, can the courier leave it with a neighbour",
    "track my order from the warehouse please",
    "deliver it between 9am and 5pm on friday",
]


@pytest.mark.parametrize("text", KEPT)
def test_intent_words_amounts_times_and_plan_names_stay(masker, text: str) -> None:
    assert masked(masker, text) == clean_text(text)


def test_seed_messages_are_rarely_over_masked(masker) -> None:
    """Over-masking on the seed data: words the intent needs stay.

    The seed has real values (order/invoice/bill numbers, "bill from Justin Edwards"); what must not
    happen is a lower-case word being masked, or anything masked that is neither a number-bearing
    value nor a capitalised name.
    """
    frame = pd.read_csv(PROJECT_ROOT / "data" / "raw_customer_interactions.csv")
    texts = sorted({clean_text(t) for t in frame["query"].dropna().astype(str)})
    sample = random.Random(7).sample(texts, 1500)
    over = []
    for text, result in zip(sample, masker.mask_batch(sample)):
        values = [text[e.start : e.end] for e in result.entities]
        if any(not any(c.isdigit() for c in v) and not all(w[:1].isupper() for w in v.split()) for v in values):
            over.append(result.text)
    assert len(over) / len(sample) <= 0.005, over[:20]


def test_another_teams_data_is_rarely_over_masked(masker) -> None:
    """BANKING77 (third-party, no personal data) masked as one batch, as stage 1 masks a file: a word
    spaCy calls a name in a few messages ("ATM", "I'm", "top-ups") must not spread to hundreds more.
    Place names are masked by design; any other placeholder is over-masking."""
    frame = pd.read_csv(PROJECT_ROOT / "data" / "benchmarks" / "banking77" / "train.csv")
    sample = random.Random(7).sample([clean_text(t) for t in frame["text"].astype(str)], 2000)
    over = [r.text for r in masker.mask_batch(sample) if any(e.entity_type != "LOCATION" for e in r.entities)]
    assert len(over) / len(sample) <= 0.01, over[:20]


@pytest.mark.parametrize("text", [
    "How do I close my account, since I'm dissatisfied?", "Why isn't a refund showing on my statement?",
    "what is the limit for top-ups?", "The recipient says it hasn't arrived", "How can I exchange AUD for GBP?",
    "How can it be that my Card is not functioning anymore?", "My transaction from earlier needs to be reversed.",
    "Do you work in China?", "can i use my card in the uk", "I changed Russian Ruble into UK pounds",
    "ship it to France please", "Is the service available across the European Economic Area?",
])
def test_contractions_compounds_and_banking_words_are_no_names(masker, text: str) -> None:
    assert masked(masker, text) == clean_text(text)


def test_a_name_spreads_through_a_batch_only_where_it_is_mostly_found() -> None:
    from intent_pipeline.pii.engine import MaskResult, mask_repeated_names
    from intent_pipeline.pii.resolve import PiiEntity

    def found(text: str, value: str) -> MaskResult:
        start = text.index(value)
        return MaskResult(text.replace(value, "[PERSON]"), [PiiEntity("PERSON", start, start + len(value), 0.85)])

    texts = ["ask Zorbatek about it", "Zorbatek said no", "tell Zorbatek thanks", "the Quillon broke",
             *[f"my Quillon number {i} is late" for i in range(5)]]
    results = [found(texts[0], "Zorbatek"), MaskResult(texts[1], []), MaskResult(texts[2], []),
               found(texts[3], "Quillon"), *[MaskResult(t, []) for t in texts[4:]]]
    out = [r.text for r in mask_repeated_names(texts, results)]
    assert out[:3] == ["ask [PERSON] about it", "[PERSON] said no", "tell [PERSON] thanks"]  # missed 2 per find
    assert out[4:] == texts[4:]  # "Quillon" found once and missed five times is a word here


def test_countries_stay_but_towns_and_country_first_names_are_masked(masker) -> None:
    """Countries and continents identify nobody (HIPAA Safe Harbor keeps units of state size and up)."""
    assert masked(masker, "I live in Leeds and travel to France") == "I live in [LOCATION] and travel to France"
    assert masked(masker, "Jordan helped me yesterday") == "[PERSON] helped me yesterday"
    assert masked(masker, "my address is 12 Baker Street, London, UK").endswith("[LOCATION], UK")


def test_contractions_are_told_from_names() -> None:
    from intent_pipeline.pii.words import is_compound_of_common, is_contraction

    assert all(map(is_contraction, ["I'm", "isn't", "won't", "it's", "they're", "I've", "someone's"]))
    assert not any(map(is_contraction, ["John's", "O'Brien", "D'Angelo", "Zoë"]))
    assert is_compound_of_common("top-ups") and not is_compound_of_common("Mary-Jane")


def test_mask_then_truncate_masks_a_value_the_cut_would_split(masker) -> None:
    text = "x" * 40 + " call me on +44 7911 123456 thanks"
    cut = len("x" * 40 + " call me on +44 77")
    [(out, truncated)] = mask_then_truncate(masker, [text], cut)
    assert truncated and "7911" not in out and "79" not in out.split()[-1]
    assert truncate_masked("hello [PHONE] there", 10) == ("hello", True)
    assert truncate_masked("short", 10) == ("short", False)


def test_registry_is_the_one_source_of_entities_and_placeholders(masker) -> None:
    reported = {e for r in masker.analyzer.registry.recognizers for e in r.supported_entities}
    assert reported == set(registry.ENTITIES) == set(registry.PLACEHOLDERS)
    assert all(re.fullmatch(r"\[[A-Z_]+\]", p) for p in registry.PLACEHOLDERS.values())
    assert {r.name for r in masker.analyzer.registry.recognizers} == set(masker.tiers)


def test_default_id_rule_is_a_setting(masker) -> None:
    text = "my loyalty card says KX48812Q7 and 20394857"
    assert masked(masker, text) == "my loyalty card says [ID] and [ID]"
    plain = get_masker(masker.spacy_model, mask_unknown_ids=False)
    assert plain.mask(text).text == text


# PII-free requests in the forms chat arrives in; spaCy's small model took a run of their words (or an
# emoji) for a name, and a batch then spread it to every plain copy ("my package has not arrived").
VARIED_FORM_REQUESTS = [
    "Urgent: When Will My Order Ship?!",
    "-- Hey!! When Will The Refund Reach My Card... --",
    "🤔 hey naïve question",
    "HI, CAFÉ ORDER WAS WRONG AND I WANT A REFUND THANKS!",
    "'Hey!! Café Order Was Wrong And I Want A Refund.'",
    "My Package Has Not Arrived Yet",
    "...URGENT: MY PACKAGE HAS NOT ARRIVED YET......",
    "🤔 URgeNT: WHEn WIlL MY OrDEr sHIp?!",
    "Naïve Question: Where Is My Résumé Order Please",
]


@pytest.mark.parametrize("text", VARIED_FORM_REQUESTS)
def test_title_case_caps_emoji_and_accents_are_not_names(masker, text: str) -> None:
    assert masked(masker, text) == clean_text(text)


def test_varied_forms_do_not_spread_through_a_batch(masker) -> None:
    texts = [clean_text(t) for t in [*VARIED_FORM_REQUESTS, "my package has not arrived yet", "when will my order ship"]]
    assert [r.text for r in masker.mask_batch(texts)] == texts


@pytest.mark.parametrize("text,names", [
    ("Hi John, my package has not arrived", ["John"]),
    ("This Is Sarah Connolly From Leeds", ["Sarah", "Connolly"]),
    ("THIS IS SARAH CONNOLLY FROM LEEDS", ["SARAH", "CONNOLLY", "LEEDS"]),
    ("Hi Mark, My Order Is Late", ["Mark"]),  # a common word after a cue is a name
    ("MY NAME IS MARK JOHNSON", ["MARK", "JOHNSON"]),
    ("My Name Is Will Smith And My Order Is Late", ["Will", "Smith"]),
    ("Please Ask Mark Johnson To Call Me", ["Mark", "Johnson"]),
    ("Grace Hopper ordered it", ["Grace", "Hopper"]),
    ("add it to the invoice, company contact Thérèse Descamps", ["Thérèse", "Descamps"]),  # accents stay rare
    ("I Live In Bath And My Parcel Is Lost", ["Bath"]),
])
def test_names_in_title_case_and_caps_are_still_masked(masker, text: str, names: list[str]) -> None:
    out = masked(masker, text)
    for name in names:
        assert not re.search(rf"\b{name}\b", out), out
    # ... also where a batch holds the same request without the name
    batch = masker.mask_batch([clean_text(text), "my package has not arrived yet"])
    assert batch[0].text == out and batch[1].text == "my package has not arrived yet"


def test_statistical_spans_are_cut_at_function_words() -> None:
    from intent_pipeline.pii.resolve import name_pieces

    text = "Urgent: When Will My Order Ship"
    assert name_pieces(text, text.index("Will"), len(text)) == []
    text = "Hi John My Order"
    assert name_pieces(text, 0, len(text)) == [(3, 7)]  # "John"; "Hi" and "Order" are no name
    assert name_pieces("📦 ok", 0, 1) == []  # no letter, no name
    assert name_pieces("dob 18/01/1946", 4, 14) == [(4, 14)]  # ... but digits stay masked
    text = "the parcel goes to The Hague"
    assert name_pieces(text, text.index("The"), len(text), "LOCATION") == [(text.index("The"), len(text))]


@pytest.mark.parametrize("text, name", [
    ("WILL SMITH CALLED ABOUT ORDER", "WILL SMITH"),
    ("HI, THIS IS WILL SMITH, MY ORDER IS LATE", "WILL SMITH"),
    ("I SPOKE TO MARK JOHNSON ABOUT MY REFUND", "MARK JOHNSON"),
    ("HOW DO I DOWNLOAD MY BILLS FROM FRANK ANDERSON?", "FRANK ANDERSON"),
])
def test_names_in_an_all_caps_message_are_masked(masker, text: str, name: str) -> None:
    masked = masker.mask(text).text
    assert name not in masked and "[PERSON]" in masked


@pytest.mark.parametrize("text", [
    "WHERE IS MY ORDER", "I WANT A REFUND FOR MY BROKEN HEADPHONES", "CAN I TALK TO A REAL PERSON PLEASE",
    "HOW DO I CANCEL MY PREMIUM PLAN", "WHAT IS 2 PLUS 2?",
])
def test_an_all_caps_message_without_pii_is_left_alone(masker, text: str) -> None:
    assert masker.mask(text).text == text


def test_patterns_are_compiled_when_the_masker_is_built(monkeypatch) -> None:
    """A message with a cue must not wait while Presidio compiles a recognizer's regex (5-50 ms each):
    a fresh masker (not the session's, whose recognizers may have run already) compiles none on use."""
    import regex
    from presidio_analyzer import PatternRecognizer

    import config
    from intent_pipeline.pii.engine import PiiMasker

    fresh = PiiMasker(config.get_settings().spacy_model)
    recognizers = [r for r in fresh.analyzer.registry.recognizers if isinstance(r, PatternRecognizer)]
    sources = {p.regex for r in recognizers for p in r.patterns}
    assert len(sources) > 20
    compiled: list[str] = []
    real = regex.compile

    def spy(pattern, *args, **kwargs):
        if pattern in sources:
            compiled.append(pattern)
        return real(pattern, *args, **kwargs)

    monkeypatch.setattr(regex, "compile", spy)
    for cases in CASES.values():
        for text, value in cases:
            assert value.lower() not in masked(fresh, text).lower()
    assert not compiled, f"{len(compiled)} patterns compiled on first use"
