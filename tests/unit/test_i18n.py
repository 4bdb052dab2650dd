"""The one translation mechanism: language normalisation and complete, consistent catalogs."""

import importlib
import pkgutil

import pytest

import dikkat
from dikkat.i18n import DEFAULT_LANGUAGE, LANGUAGES, Catalog, fields, normalise_language


def all_catalogs() -> dict[str, Catalog]:
    """Every module-level Catalog in the package (bot, viz, anything else that speaks), by
    every name it can be imported as."""
    found = {}
    for module_info in pkgutil.walk_packages(dikkat.__path__, "dikkat."):
        if module_info.name.startswith(("dikkat.bench", "dikkat.training", "dikkat.__main__")):
            continue  # no user-facing text there, and slow or side-effecting to import
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if isinstance(value, Catalog):
                found[f"{module_info.name}.{name}"] = value
    return found


@pytest.mark.parametrize(
    ("code", "expected"),
    [("tr", "tr"), ("tr-TR", "tr"), ("TR_tr", "tr"), ("en-GB", "en"), ("de", "en"), (" en ", "en")],
)
def test_client_codes_map_to_a_supported_language(code: str, expected: str) -> None:
    assert normalise_language(code) == expected


def test_no_code_means_the_default() -> None:
    assert normalise_language(None) == normalise_language("") == DEFAULT_LANGUAGE
    assert normalise_language(None, "en") == "en"


def test_text_formats_in_the_normalised_language() -> None:
    catalog = Catalog({"hi": {"tr": "Merhaba {name}", "en": "Hi {name}"}})
    assert catalog.text("hi", "tr-TR", name="Ayşe") == "Merhaba Ayşe"
    assert catalog.text("hi", "de", name="Jo") == "Hi Jo"
    assert catalog.text("hi", None, name="Ali") == "Merhaba Ali"
    assert catalog["hi"]["en"] == "Hi {name}" and "hi" in catalog and len(catalog) == 1


def test_problems_name_a_missing_language_and_differing_fields() -> None:
    catalog = Catalog({"a": {"tr": "x"}, "b": {"tr": "{n} tane", "en": "{count} items"}})
    assert [problem.split(":")[0] for problem in catalog.problems()] == ["a", "b"]
    assert fields("{n:.2f} of {total} ({n})") == {"n", "total"}


def test_the_package_speaks_through_catalogs() -> None:
    names = set(all_catalogs())
    for expected in (
        "dikkat.bot.i18n.MESSAGES",
        "dikkat.bot.commands.registry.COMMAND_HELP",
        "dikkat.bot.commands.registry.ARGUMENT_HELP",
        "dikkat.viz.explain_text.TEXT",
        "dikkat.viz.worked_example.TEXT",
        "dikkat.viz.gpt_attention.TEXT",
        "dikkat.viz.encoder_attention.TEXT",
        "dikkat.viz.explain.TEXT",
    ):
        assert expected in names


def test_every_key_has_every_language_with_the_same_fields() -> None:
    problems = {
        f"{name}: {problem}"
        for name, catalog in all_catalogs().items()
        for problem in catalog.problems()
    }
    assert not problems
    assert LANGUAGES == ("tr", "en")


def test_every_command_and_argument_is_described() -> None:
    from dikkat.bot.commands.registry import ARGUMENT_HELP, COMMAND_HELP, COMMANDS

    assert list(COMMAND_HELP) == [command.name for command in COMMANDS]
    assert set(ARGUMENT_HELP) == {command.name for command in COMMANDS if command.argument}
