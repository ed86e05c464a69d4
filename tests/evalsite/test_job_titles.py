"""Job titles are stored in English and shown in the page's language, with the names in them as written."""

from django.utils.translation import override

from evalsite.job_titles import TITLES, job_title, translated_title


def test_a_stored_title_is_english_and_shown_translated_with_its_names_kept():
    with override("zh-hans"):
        stored = job_title("prepare_media", name="Campaign: A vs B")
        assert stored == "Prepare the media of campaign Campaign: A vs B"
        assert translated_title(stored) == "准备任务 Campaign: A vs B 的媒体"
    with override("en"):
        assert translated_title(stored) == stored


def test_every_title_pattern_is_translated_and_an_unknown_title_is_shown_as_stored():
    with override("zh-hans"):
        for key, msgid in TITLES.items():
            names = {part: f"x{i}" for i, part in enumerate(__import__("re").findall(r"%\((\w+)\)s", msgid))}
            shown = translated_title(job_title(key, **names))
            assert shown != msgid % names and all(value in shown for value in names.values()), key
        assert translated_title("Something else entirely") == "Something else entirely"


def test_the_import_a_checked_dry_run_starts_is_titled_from_the_check():
    from evalsite.job_titles import import_title_of_check

    assert import_title_of_check(job_title("check_folder", name="Check me")) == "Import folder Check me"
    assert import_title_of_check(job_title("check_archive", name="a.zip")) == "Import archive a.zip"
    assert import_title_of_check("Something else") == "Something else"
