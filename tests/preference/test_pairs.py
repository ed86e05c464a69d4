"""The pure preference logic: votes to chosen/rejected, agreement, ties, the minimum-agreement filter,
per-judgment records, per-video scores, annotator hashing and the split by prompt. No database."""

import itertools
import random

import pytest

from preference.pairs import (
    DECIDED_LABEL,
    TIE_LABEL,
    PairsError,
    ScoreRow,
    Vote,
    aggregate_scores,
    build_pairs,
    decide,
    hash_annotator,
    normalise_prompt_text,
    pair_id,
    split_by_prompt,
    split_of,
)

_ids = itertools.count(1)


def vote(choice, left="vA", right="vB", annotator="h1", prompt=1, campaign="c1"):
    return Vote(
        judgment_id=next(_ids),
        campaign=campaign,
        prompt_id=prompt,
        left_video=left,
        right_video=right,
        choice=choice,
        annotator=annotator,
    )


def test_two_to_one_chooses_the_majority_with_agreement_two_thirds():
    votes = [
        vote("left", annotator="h1"),
        vote("right", left="vB", right="vA", annotator="h2"),
        vote("right", annotator="h3"),
    ]
    # h1 and h2 both preferred vA (h2 saw it on the right), h3 preferred vB.
    records, counts = build_pairs(votes)
    assert len(records) == 1
    record = records[0]
    assert (record.chosen, record.rejected) == ("vA", "vB")
    assert (record.votes_chosen, record.votes_rejected, record.votes_tie) == (2, 1, 0)
    assert record.agreement == pytest.approx(2 / 3)
    assert record.label == DECIDED_LABEL
    assert record.annotators == ("h1", "h2", "h3")
    assert record.record_id == record.pair_id == pair_id("vB", "vA")
    assert (counts.votes, counts.pairs, counts.records, counts.tie_pairs) == (3, 1, 1, 0)


@pytest.mark.parametrize(
    ("a", "b", "ties", "chosen", "agreement"),
    [
        (2, 1, 0, "A", 2 / 3),
        (0, 3, 0, "B", 1.0),
        (2, 0, 1, "A", 2 / 3),
        (2, 0, 2, "A", 0.5),  # a preference nobody contradicted beats an equal number of ties
        (1, 1, 0, None, 0.5),
        (1, 0, 2, None, 2 / 3),  # the ties are the majority
        (1, 1, 1, None, 1 / 3),
        (3, 2, 4, None, 4 / 9),
    ],
)
def test_decide_follows_the_stated_rule(a, b, ties, chosen, agreement):
    outcome = decide("A", a, "B", b, ties)
    assert outcome.chosen == chosen
    assert outcome.agreement == pytest.approx(agreement)


def test_decide_rejects_a_pair_without_votes():
    with pytest.raises(PairsError, match="at least one vote"):
        decide("A", 0, "B", 0, 0)


def tie_votes():
    return [vote("tie", annotator="h1"), vote("tie", annotator="h2"), vote("left", annotator="h3")]


def test_a_tied_pair_is_dropped_by_default():
    records, counts = build_pairs(tie_votes())
    assert records == []
    assert (counts.pairs, counts.tie_pairs, counts.dropped_ties, counts.records) == (1, 1, 1, 0)


def test_a_tied_pair_kept_as_a_half_label():
    records, counts = build_pairs(tie_votes(), ties="label")
    assert len(records) == 1
    record = records[0]
    assert record.label == TIE_LABEL and record.is_tie
    assert {record.chosen, record.rejected} == {"vA", "vB"}
    assert record.votes_tie == 2
    assert record.votes_chosen + record.votes_rejected == 1
    assert record.agreement == pytest.approx(2 / 3)
    assert counts.dropped_ties == 0


def test_min_agreement_keeps_only_pairs_at_or_above_it():
    votes = [
        vote("left", annotator="h1"),
        vote("left", annotator="h2"),
        vote("right", annotator="h3"),  # vA vs vB: 2-1, agreement 2/3
        vote("left", "vC", "vD", annotator="h1", prompt=2),
        vote("left", "vC", "vD", annotator="h2", prompt=2),  # vC vs vD: 2-0, agreement 1
    ]
    kept, counts = build_pairs(votes, min_agreement=0.7)
    assert [(r.chosen, r.rejected) for r in kept] == [("vC", "vD")]
    assert counts.below_min_agreement == 1
    both, _ = build_pairs(votes, min_agreement=2 / 3)
    assert [(r.chosen, r.rejected) for r in both] == [("vA", "vB"), ("vC", "vD")]


def test_per_judgment_mode_gives_one_record_per_vote_with_the_pair_counts():
    votes = [
        vote("left", annotator="h1"),
        vote("left", annotator="h2"),
        vote("right", annotator="h3"),
        vote("tie", annotator="h4"),
    ]
    records, counts = build_pairs(votes, granularity="judgment")
    # The tie vote is dropped; the other three are records of their own.
    assert len(records) == 3 and counts.dropped_ties == 1
    by_annotator = {r.annotators: r for r in records}
    assert (by_annotator[("h1",)].chosen, by_annotator[("h3",)].chosen) == ("vA", "vB")
    minority = by_annotator[("h3",)]
    assert (minority.votes_chosen, minority.votes_rejected, minority.votes_tie) == (1, 2, 1)
    assert all(r.agreement == pytest.approx(2 / 4) for r in records)
    assert len({r.record_id for r in records}) == 3
    assert all(r.pair_id == pair_id("vA", "vB") for r in records)

    with_ties, _ = build_pairs(votes, granularity="judgment", ties="label")
    assert sorted(r.label for r in with_ties) == [TIE_LABEL, DECIDED_LABEL, DECIDED_LABEL, DECIDED_LABEL]


def test_per_judgment_mode_applies_min_agreement_to_the_pair():
    votes = [vote("left", annotator="h1"), vote("right", annotator="h2")]
    records, counts = build_pairs(votes, granularity="judgment", min_agreement=0.6)
    assert records == [] and counts.below_min_agreement == 1


def test_the_order_of_votes_does_not_change_the_records():
    votes = [
        vote(random.Random(i).choice(["left", "right", "tie"]), *pair, annotator=f"h{i}", prompt=p)
        for i in range(40)
        for p, pair in [(1 + i % 3, (f"v{i % 3}a", f"v{i % 3}b"))]
    ]
    first, _ = build_pairs(votes, ties="label", granularity="judgment")
    shuffled = votes[:]
    random.Random(7).shuffle(shuffled)
    second, _ = build_pairs(shuffled, ties="label", granularity="judgment")
    assert first == second
    assert [r.prompt_id for r in first] == sorted(r.prompt_id for r in first)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_agreement": 1.5}, "minimum agreement"),
        ({"ties": "half"}, "ties must be one of"),
        ({"granularity": "item"}, "granularity must be one of"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(options, message):
    with pytest.raises(PairsError, match=message):
        build_pairs([vote("left")], **options)


def test_bad_votes_are_refused():
    with pytest.raises(PairsError, match="unknown choice"):
        build_pairs([vote("both")])
    with pytest.raises(PairsError, match="same video"):
        build_pairs([vote("left", left="vA", right="vA")])
    with pytest.raises(PairsError, match="two prompts"):
        build_pairs([vote("left", prompt=1), vote("left", prompt=2)])


def test_split_is_deterministic_and_keeps_every_prompt_on_one_side():
    texts = {i: f"prompt {i}" for i in range(1, 401)}
    split = split_by_prompt(texts, seed="s1", validation_fraction=0.25)
    assert split == split_by_prompt(dict(reversed(texts.items())), seed="s1", validation_fraction=0.25)
    assert set(split) == set(texts)
    validation = [p for p, side in split.items() if side == "validation"]
    # 400 prompts at 25%: the binomial standard deviation is about 8.7, so 60..140 is far outside chance.
    assert 60 <= len(validation) <= 140
    assert all(split_of(texts[p], seed="s1", validation_fraction=0.25) == split[p] for p in texts)
    other_seed = split_by_prompt(texts, seed="s2", validation_fraction=0.25)
    assert other_seed != split


def test_split_follows_the_normalised_prompt_text_not_the_prompt_id():
    assert normalise_prompt_text("  A Cat\t runs\n\u3000") == "a cat runs"
    assert normalise_prompt_text("Straße") == normalise_prompt_text("STRASSE")
    spellings = {1: "A cat runs", 2: " a  CAT runs ", 3: "a cat\nruns", 4: "A CAT RUNS"}
    for n in range(64):
        split = split_by_prompt({**spellings, 5: "a dog"}, seed=f"s{n}", validation_fraction=0.5)
        assert len({split[p] for p in spellings}) == 1
    # The dog is on the other side for some seed: the text decides, not a constant.
    assert any(
        split_by_prompt({1: "A cat runs", 5: "a dog"}, seed=f"s{n}", validation_fraction=0.5)[1]
        != split_by_prompt({1: "A cat runs", 5: "a dog"}, seed=f"s{n}", validation_fraction=0.5)[5]
        for n in range(64)
    )


def test_split_fractions_at_the_edges():
    texts = {i: f"prompt {i}" for i in range(200)}
    assert set(split_by_prompt(texts, seed="x", validation_fraction=0.0).values()) == {"train"}
    wider = split_by_prompt(texts, seed="x", validation_fraction=0.5)
    narrower = split_by_prompt(texts, seed="x", validation_fraction=0.2)
    # A larger fraction only moves prompts into validation, never out of it.
    assert all(wider[p] == "validation" for p, side in narrower.items() if side == "validation")
    with pytest.raises(PairsError, match="validation fraction"):
        split_of("a prompt", seed="x", validation_fraction=1.0)


def test_annotator_hash_is_stable_keyed_and_short():
    key = b"k" * 32
    assert hash_annotator(42, key) == hash_annotator(42, key)
    assert hash_annotator(42, key) != hash_annotator(43, key)
    assert hash_annotator(42, key) != hash_annotator(42, b"other key")
    assert len(hash_annotator(42, key)) == 16
    assert "42" not in hash_annotator(42, key)


def test_video_scores_are_means_over_annotators():
    rows = [
        ScoreRow("v1", 1, "h2", (5, 4, 3, 2)),
        ScoreRow("v1", 1, "h1", (3, 4, 5, 4)),
        ScoreRow("v0", 2, "h1", (1, 1, 1, 1)),
    ]
    scores = aggregate_scores(rows)
    assert [s.video for s in scores] == ["v1", "v0"]  # by prompt, then video
    v1 = scores[0]
    assert v1.n == 2
    assert v1.means == pytest.approx((4.0, 4.0, 4.0, 3.0))
    assert v1.by_annotator == (("h1", (3, 4, 5, 4)), ("h2", (5, 4, 3, 2)))
    with pytest.raises(PairsError, match="1 to 5"):
        aggregate_scores([ScoreRow("v1", 1, "h1", (0, 4, 5, 4))])
