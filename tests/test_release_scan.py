"""The release PII gate tells a leak from a word: field names, label names, numbers and words of the
training data never fire it; a masked value in free text, a plot or the model card always does, and
the finding names file, place and entity type, never the value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import config
from intent_pipeline.pii_digests import PiiDigests
from intent_pipeline.artifacts import PII_VALUES as PII_VALUES_FILE
from intent_pipeline.release_scan import find_leaks


def make_release(folder: Path, card: str = "# Intent classifier\n\nTrained on support chat.\n") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"id2label": {"0": "max", "1": "track_order", "2": "refund"}}))
    (folder / "metrics.json").write_text(json.dumps({
        "macro_f1": 0.97, "max": 0.99, "per_class": {"max": {"f1": 0.98, "support": 1234567}},
        "note": "evaluated on the held-out split"}))
    (folder / "thresholds.json").write_text(json.dumps({"max": 0.91, "min_margin": 0.05, "label": "max"}))
    (folder / "README.md").write_text(card)
    return folder


@pytest.fixture
def gate(tmp_path: Path, settings_env: Path):
    """(release folder, settings): stage 1 masked the name "Max Turner"'s "max", "Siobhan Kelleher",
    an e-mail and an account number; "max" also occurs unmasked in the training data."""
    digests = PiiDigests()
    for kind, value in [("PERSON", "max"), ("PERSON", "Siobhan Kelleher"), ("EMAIL_ADDRESS", "s.kelleher@example.ie"),
                        ("BANK_ACCOUNT", "40308669"), ("PERSON", "turner")]:
        digests.add(kind, value)
    artifacts = settings_env / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    digests.save(artifacts / PII_VALUES_FILE)
    return make_release, dataclasses.replace(config.get_settings(), artifacts_dir=artifacts), digests


def test_field_names_label_names_and_numbers_do_not_fire(tmp_path: Path, gate) -> None:
    make, settings, _ = gate
    folder = make(tmp_path / "release")
    assert find_leaks(folder, settings) == []


def test_a_word_that_also_occurs_unmasked_in_the_training_data_does_not_fire(tmp_path: Path, gate) -> None:
    make, settings, digests = gate
    folder = make(tmp_path / "release", "# Card\n\nWe turned the turner setting to its highest.\n")
    assert [leak.kind for leak in find_leaks(folder, settings)] == ["PERSON"]
    # "turner" is a word of the training data ("the turner is broken"): stage 1 forgets it
    assert digests.forget_words(["my [PERSON] said the turner is broken", "refund please"]) == 1
    digests.save(settings.artifacts_dir / PII_VALUES_FILE)
    assert find_leaks(folder, settings) == []
    saved = json.loads((settings.artifacts_dir / PII_VALUES_FILE).read_text())
    assert saved["dropped_as_words_of_the_data"] == 1


def test_a_real_leak_in_the_model_card_stops_the_release_without_showing_it(tmp_path: Path, gate) -> None:
    make, settings, _ = gate
    card = "# Card\n\nExamples\n\n| text | label |\n| --- | --- |\n| asked by Siobhan Kelleher | refund |\n"
    folder = make(tmp_path / "release", card)
    leaks = find_leaks(folder, settings)
    assert [str(leak) for leak in leaks] == ["README.md line 7 (PERSON)"]
    assert "Siobhan" not in str(leaks) and "Kelleher" not in str(leaks)


def test_a_leak_in_a_json_text_field_or_a_plot_names_the_field_or_line(tmp_path: Path, gate) -> None:
    make, settings, _ = gate
    folder = make(tmp_path / "release")
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["examples"] = [{"text": "refund to 40308669 please", "label": "refund"},
                           {"text": "mail s.kelleher@example.ie", "label": "max"}]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "plots").mkdir()
    (folder / "plots" / "confusion.html").write_text("<html>\n<div>hover: Siobhan Kelleher</div>\n</html>\n")
    found = sorted(str(leak) for leak in find_leaks(folder, settings))
    assert found == ["metrics.json $.examples[0].text (BANK_ACCOUNT)", "metrics.json $.examples[1].text (EMAIL_ADDRESS)",
                     "plots/confusion.html line 2 (PERSON)"]
    assert not any(value in " ".join(found) for value in ("40308669", "kelleher", "Siobhan"))
