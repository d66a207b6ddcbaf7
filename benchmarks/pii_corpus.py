"""Seeded generator of chat-style support messages with labelled PII spans (for bench_pii.py).

Values come from Faker in ten locales (US, GB, IE, CA, AU, IN, FR, DE, ES, IT); the sentences come
from per-intent chat templates written for this benchmark (they are not the unit tests'). A share
of messages is lower-cased, loses its punctuation, or gets a typo in a template word, as real chat
does. Every message records the character spans of the values it contains and their entity type.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from faker import Faker

LOCALES = ("en_US", "en_GB", "en_IE", "en_CA", "en_AU", "en_IN", "fr_FR", "de_DE", "es_ES", "it_IT")
PHONE_REGIONS = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "en_IN": "IN", "en_AU": "AU"}


@dataclass
class Example:
    text: str
    intent: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, entity type)


# slot -> entity type
SLOT_TYPES = {
    "name": "PERSON", "first": "PERSON", "agent": "PERSON", "address": "STREET_ADDRESS", "postcode": "POSTCODE",
    "city": "LOCATION", "email": "EMAIL_ADDRESS", "spelled_email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER",
    "dob": "DATE_OF_BIRTH", "account": "BANK_ACCOUNT", "sort_code": "SORT_CODE", "routing": "ROUTING_NUMBER",
    "iban": "IBAN_CODE", "card": "CREDIT_CARD", "cvv": "SECURITY_CODE", "otp": "SECURITY_CODE",
    "passport": "PASSPORT", "licence": "DRIVING_LICENCE", "national_id": "NATIONAL_ID", "vat": "TAX_ID",
    "tracking": "TRACKING_NUMBER", "username": "USERNAME", "handle": "USERNAME", "customer_id": "ID",
}

TEMPLATES: dict[str, list[str]] = {
    "manage_shipping_address": [
        "hey can you change the delivery address on my order to {address}, {city} {postcode} please",
        "i moved last month, new address is {address} {postcode} {city}",
        "please ship it to {address}, {postcode} instead of my old place",
        "Hello, this is {name}. Could you update my shipping address to {address}, {city}, {postcode}?",
        "the parcel should go to {address} {city} {postcode}, not the billing one",
        "wrong address on file, its {address} postcode {postcode}",
        "deliver to {address} {postcode} and call {phone} when outside",
    ],
    "refund": [
        "hi im {name} and i still havent got my refund, send it to account number {account} sort code {sort_code}",
        "Please refund to my bank account {account}, routing {routing}. Thanks, {name}",
        "refund hasnt arrived, my iban is {iban}",
        "can u put the money back on my card {card}? the cvv is {cvv}",
        "my name is {name}, the refund should go to acct {account}",
        "Refund request from {name} ({email}) for the damaged blender",
    ],
    "account_management": [
        "i cant log in, my username is {username} and the email on the account is {email}",
        "Hi, I'm {name}. My user id is {username}, please reset my password",
        "update my phone number to {phone} please, name on the account is {name}",
        "my email changed, it's now {spelled_email}",
        "please close the account for {name}, date of birth {dob}",
        "verification code {otp} didnt work for me",
        "the one time code you sent is {otp} but it says expired",
        "hi this is {first}, dob {dob}, i need to change my email to {email}",
        "my customer id is {customer_id}, can you merge my two accounts",
    ],
    "identity_verification": [
        "For verification: passport number {passport}, born {dob}",
        "my driving licence number is {licence}, is that enough to verify?",
        "id check: national id {national_id}, name {name}",
        "here is my passport no {passport} and my date of birth is {dob}",
        "you asked for my licence, its {licence}",
        "social security number {national_id}",
    ],
    "invoice": [
        "please add our vat number {vat} to the invoice, company contact {name}",
        "Can you reissue the invoice with VAT ID {vat}? Send it to {email}",
        "our tax id is {vat}, the invoice is missing it",
    ],
    "track_order": [
        "where is my parcel? tracking number {tracking}",
        "the courier {agent} said it was delivered but its not here, tracking {tracking}",
        "ups tracking {tracking} hasnt moved in 4 days",
        "Hi, I'm {name}, my package {tracking} is late. Call me on {phone}.",
        "driver {agent} left my parcel at the wrong house, tracking no {tracking}",
    ],
    "contact_customer_service": [
        "pls call me back on {phone}, ask for {name}",
        "I spoke to your agent {agent} yesterday and he promised a callback to {phone}",
        "you can reach me at {email} or {phone}",
        "message me on insta {handle} if easier",
        "my twitter is {handle}, i tweeted at you",
        "email me at {spelled_email} thanks",
        "this is {name} again, customer number {customer_id}",
    ],
    "payment": [
        "the payment failed on card {card}, cvv {cvv}, can you retry",
        "Charge my new card {card} please, security code {cvv}",
        "i paid by transfer from account {account}, sort code {sort_code}, reference {customer_id}",
        "pay with my bank, routing number {routing} account {account}",
    ],
}


def _spell_email(fake: Faker, rng: random.Random) -> str:
    local = fake.user_name()
    domain, _, tld = fake.free_email_domain().rpartition(".")
    style = rng.randrange(3)
    if style == 0:
        return f"{local.replace('.', ' dot ')} at {domain} dot {tld}"
    if style == 1:
        return f"{local}(at){domain}.{tld}"
    return f"{local} [at] {domain} [dot] {tld}"


def _phone(fake: Faker, locale: str, rng: random.Random) -> str:
    import phonenumbers

    region = PHONE_REGIONS.get(locale) or rng.choice(list(PHONE_REGIONS.values()))
    number = phonenumbers.example_number_for_type(region, rng.choice(
        [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]))
    national = str(number.national_number)
    # replace the example's subscriber digits so numbers differ, keeping the length and prefix
    keep = max(3, len(national) - 5)
    national = national[:keep] + "".join(rng.choice(string.digits) for _ in range(len(national) - keep))
    number = phonenumbers.parse("+" + str(number.country_code) + national)
    fmt = rng.choice([phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL,
                      phonenumbers.PhoneNumberFormat.E164])
    return phonenumbers.format_number(number, fmt)


def _dob(fake: Faker, rng: random.Random) -> str:
    date = fake.date_of_birth(minimum_age=18, maximum_age=90)
    formats = ["%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y", "%d %B %Y", "%B %d %Y", "%d %b %Y", "%d-%m-%y"]
    return date.strftime(rng.choice(formats))


def _name(fake: Faker, rng: random.Random) -> str:
    """A person's name without the titles and suffixes Faker sometimes adds ("Dr.", "II", "PhD")."""
    if rng.random() < 0.7:
        return f"{fake.first_name()} {fake.last_name()}"
    words = [w for w in fake.name().split() if "." not in w and w not in ("II", "III", "IV", "V", "MD", "PhD", "DDS", "DVM", "Jr", "Sr")]
    return " ".join(words)


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(n - 1))


def _value_makers(fake: Faker, locale: str, rng: random.Random) -> dict[str, Callable[[], str]]:
    upper = string.ascii_uppercase
    return {
        "name": lambda: _name(fake, rng), "first": fake.first_name, "agent": fake.first_name,
        "address": fake.street_address, "postcode": fake.postcode, "city": fake.city,
        "email": fake.email, "spelled_email": lambda: _spell_email(fake, rng),
        "phone": lambda: _phone(fake, locale, rng), "dob": lambda: _dob(fake, rng),
        "account": lambda: _digits(rng, rng.choice([8, 10, 12])),
        "sort_code": lambda: "-".join(_digits(rng, 2) for _ in range(3)) if rng.random() < 0.7 else _digits(rng, 6),
        "routing": lambda: fake.unique.aba() if hasattr(fake, "aba") else _digits(rng, 9),
        "iban": lambda: fake.iban() if rng.random() < 0.5 else " ".join(re.findall(".{1,4}", fake.iban())),
        "card": lambda: fake.credit_card_number() if rng.random() < 0.5
        else " ".join(re.findall(".{1,4}", fake.credit_card_number())),
        "cvv": lambda: _digits(rng, rng.choice([3, 3, 4])), "otp": lambda: _digits(rng, 6),
        "passport": lambda: rng.choice(upper) + _digits(rng, 8) if rng.random() < 0.5 else _digits(rng, 9),
        "licence": lambda: ("".join(rng.choice(upper) for _ in range(5)) + _digits(rng, 6)
                            + "".join(rng.choice(upper + string.digits) for _ in range(5)))
        if rng.random() < 0.5 else rng.choice(upper) + _digits(rng, 7),
        "national_id": lambda: fake.ssn(),
        "vat": lambda: _vat(locale, rng),
        "tracking": lambda: rng.choice([
            "1Z" + "".join(rng.choice(upper + string.digits) for _ in range(6)) + _digits(rng, 10),
            _digits(rng, rng.choice([12, 15, 20, 22])),
            "".join(rng.choice(upper) for _ in range(2)) + _digits(rng, 9) + "GB"]),
        "username": lambda: rng.choice([fake.user_name(), fake.user_name() + str(rng.randint(1, 99))]),
        "handle": lambda: "@" + fake.user_name().replace(".", "_"),
        "customer_id": lambda: rng.choice([_digits(rng, 7), "C" + _digits(rng, 6), "CUST-" + _digits(rng, 5)]),
    }


def _vat(locale: str, rng: random.Random) -> str:
    prefix = {"en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES", "it_IT": "IT", "en_IE": "IE"}.get(
        locale, rng.choice(["GB", "DE", "FR", "NL"]))
    body = _digits(rng, 9 if prefix in ("GB", "DE", "NL") else 11)
    if prefix == "GB" and rng.random() < 0.5:
        body = f"{body[:3]} {body[3:7]} {body[7:]}"
    if prefix == "NL":
        body += "B01"
    if prefix == "ES":
        body = rng.choice(string.ascii_uppercase) + body[:8]
    return prefix + body


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1 :] if rng.random() < 0.5 else word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _fill(template: str, makers: dict[str, Callable[[], str]], rng: random.Random, lower: bool, no_punct: bool,
          typo: bool) -> tuple[str, list[tuple[int, int, str]]]:
    pieces = re.split(r"(\{\w+\})", template)
    words_to_typo = set()
    if typo:
        candidates = [i for i, p in enumerate(pieces) if not p.startswith("{") and re.search(r"[a-z]{5,}", p)]
        if candidates:
            words_to_typo.add(rng.choice(candidates))
    text, spans = "", []
    for i, piece in enumerate(pieces):
        if piece.startswith("{") and piece.endswith("}"):
            slot = piece[1:-1]
            value = makers[slot]().replace("\n", " ")
            if lower:
                value = value.lower()
            spans.append((len(text), len(text) + len(value), SLOT_TYPES[slot]))
            text += value
            continue
        if i in words_to_typo:
            words = piece.split(" ")
            long_words = [j for j, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
            if long_words:
                j = rng.choice(long_words)
                words[j] = _typo(words[j], rng)
            piece = " ".join(words)
        if no_punct:
            piece = re.sub(r"[,.?!;:()']", "", piece)
        if lower:
            piece = piece.lower()
        text += piece
    return text, spans


def _ordered(fake: Faker) -> Faker:
    """`fake` with its city lists sorted: Faker's it_IT builds its list from a set, whose order (and so
    the corpus) would follow the process's string hashing, and the same seed must give the same corpus."""
    for factory in fake.factories:
        for provider in factory.providers:
            if isinstance(getattr(provider, "cities", None), list):
                provider.cities = sorted(provider.cities)
    return fake


def generate(n: int, seed: int = 13, lower_share: float = 0.4, no_punct_share: float = 0.3,
             typo_share: float = 0.2) -> list[Example]:
    """`n` labelled messages, the same for the same seed."""
    rng = random.Random(seed)
    fakers = {}
    for locale in LOCALES:
        fakers[locale] = _ordered(Faker(locale))
        fakers[locale].seed_instance(rng.randrange(1 << 30))
    intents = sorted(TEMPLATES)
    out = []
    for _ in range(n):
        locale = rng.choice(LOCALES)
        intent = rng.choice(intents)
        template = rng.choice(TEMPLATES[intent])
        makers = _value_makers(fakers[locale], locale, rng)
        text, spans = _fill(template, makers, rng, rng.random() < lower_share, rng.random() < no_punct_share,
                            rng.random() < typo_share)
        out.append(Example(text, intent, spans))
    return out
