"""Settings: every setting is a typed field with a default and a description, a typo in a
variable or a TOML key is an error that names it and suggests the nearest name, and the
README's table is the one the definition generates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lunamail.config import OTHER_VARIABLES, ConfigError, Settings, settings_table

README = Path(__file__).parents[2] / "README.md"
START, END = "<!-- settings-table: start -->\n", "<!-- settings-table: end -->"


def test_every_setting_has_a_type_a_default_and_a_description() -> None:
    for f in dataclasses.fields(Settings):
        assert f.default is not dataclasses.MISSING, f.name
        assert str(f.metadata.get("help", "")).strip(), f"{f.name} has no description"
        assert "\n" not in f.metadata["help"], f.name
    assert "extra" not in {f.name for f in dataclasses.fields(Settings)}  # no untyped bag


def test_an_unknown_variable_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.load({"LUNAMAIL_DATA_DIR": str(tmp_path), "LUNAMAIL_SMPT_URL": "smtp://x"})
    assert str(err.value) == "unknown environment variable LUNAMAIL_SMPT_URL; did you mean LUNAMAIL_SMTP_URL?"
    with pytest.raises(ConfigError, match=r"LUNAMAIL_NOTHING_LIKE_IT$"):
        Settings.load({"LUNAMAIL_DATA_DIR": str(tmp_path), "LUNAMAIL_NOTHING_LIKE_IT": "1"})
    known = dict.fromkeys(OTHER_VARIABLES, "x")
    assert Settings.load({"LUNAMAIL_DATA_DIR": str(tmp_path), **known, "LUNAMAIL_CONFIG": ""}).data_dir == tmp_path


def test_an_unknown_toml_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "lunamail.toml"
    cfg.write_text('smtp_url = "smtp://relay:25"\nbatch_sise = 100\n')
    with pytest.raises(ConfigError) as err:
        Settings.load({"LUNAMAIL_DATA_DIR": str(tmp_path)})
    assert str(err.value) == f"{cfg}: unknown setting 'batch_sise'; did you mean 'batch_size'?"


def test_values_are_typed_from_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / "lunamail.toml").write_text(
        'batch_size = 100\nsns_topic_arns = ["arn:a", "arn:b"]\n[extra]\nedge_max_connections = 7\n'
    )  # an [extra] table (older files) holds settings like the top level
    s = Settings.load({"LUNAMAIL_DATA_DIR": str(tmp_path), "LUNAMAIL_SEND_RATE": "12.5",
                       "LUNAMAIL_BOT_CLICK_WINDOW_SECONDS": "0"})
    assert (s.batch_size, s.send_rate, s.bot_click_window_seconds) == (100, 12.5, 0.0)
    assert (s.sns_topic_arns, s.edge_max_connections) == (("arn:a", "arn:b"), 7)
    env = {"LUNAMAIL_DATA_DIR": str(tmp_path), "LUNAMAIL_SNS_TOPIC_ARNS": "arn:c, arn:d"}
    assert Settings.load(env).sns_topic_arns == ("arn:c", "arn:d")
    with pytest.raises(ConfigError, match="setting batch_size"):
        Settings.load({"LUNAMAIL_DATA_DIR": str(tmp_path), "LUNAMAIL_BATCH_SIZE": "many"})


def test_the_readme_table_is_the_generated_one() -> None:
    text = README.read_text("utf-8")
    assert START in text and END in text, "the README lost its settings-table markers"
    table = text.split(START, 1)[1].split(END, 1)[0]
    assert table == settings_table(), (
        "the README's settings table is out of date: paste the output of "
        "`python -m lunamail.config` between its markers"
    )
