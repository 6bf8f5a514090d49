"""Data as the ecosystem ships it: one fixture per format (tests/ecosystem_data.py) is read, doctored
and named; every case that used to lose data silently now warns or refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.engine.train import data as D
from studio.engine.train.data.readers import LABELS
from studio.errors import DataError
from tests import ecosystem_data as E

#: fixture → (format read, roles of row 1, images in row 1, system prompt of row 1 or None)
SFT_EXPECT = {
    "glm_finetune": ("glm_finetune", ["user", "assistant", "user", "assistant"], 2, None),
    "sharegpt": ("sharegpt", ["system", "user", "assistant"], 1, "Answer briefly."),
    "swift_messages": ("glm_finetune", ["system", "user", "assistant"], 1, "You are a useful and harmless assistant"),
    "swift_query_response": ("swift_query_response", ["system", "user", "assistant", "user", "assistant"], 1,
                             "You are a careful observer."),
    "swift_conversation": ("swift_conversation", ["system", "user", "assistant", "user", "assistant"], 1, "Be brief."),
    "trl_conversational": ("trl_conversational", ["user", "assistant"], 1, None),
    "trl_parquet": ("trl_conversational", ["user", "assistant"], 1, None),
    "prompt_completion": ("prompt_completion", ["user", "assistant"], 1, None),
    "alpaca": ("alpaca", ["system", "user", "assistant"], 1, "Be exact."),
}


@pytest.mark.parametrize("name", sorted(SFT_EXPECT))
def test_each_sft_format_reads_and_the_doctor_names_it(tmp_path, name):
    path = E.SFT_BUILDERS[name](tmp_path / name)
    rows = D.load_rows(path)
    fmt, roles, n_images, system = SFT_EXPECT[name]
    assert dict(rows.formats) == {fmt: len(rows)}
    assert rows.kind.kind == "sft"
    r = rows[0]
    assert [m["role"] for m in r.messages] == roles
    assert len(r.images) == n_images and all(Path(p).is_file() for p in r.images)
    n_tags = sum(i["type"] == "image" for m in r.messages if m["role"] == "user" for i in m["content"])
    assert n_tags == len(r.images)
    assert (r.messages[0]["content"] if r.messages[0]["role"] == "system" else None) == system
    rep = D.doctor(rows, None, None)
    assert rep.summary["errors"] == 0, rep.to_markdown()
    assert rep.notes[0].startswith(f"Read as {LABELS[fmt]} ({len(rows)} row")
    assert f"Read as {D.md_literal(LABELS[fmt])}" in rep.to_markdown()


def test_trl_items_carry_their_images_in_place(tmp_path):
    rows = D.load_rows(E.trl_conversational(tmp_path))
    base = tmp_path.resolve()
    # a placeholder filled from `images`, an item naming its file, a data: URL written to the cache
    assert rows[0].images == [str(base / "t.png")]
    assert rows[1].messages[0]["content"] == [{"type": "text", "text": "Describe "}, {"type": "image"}]
    assert rows[1].images == [str(base / "t.png")]
    cached = Path(rows[2].images[0])
    assert cached.parent == base / ".studio_media" and cached.suffix == ".png" and cached.is_file()


def test_parquet_images_are_written_once_beside_the_data_and_not_under_a_doubled_path(tmp_path, monkeypatch):
    E.trl_parquet(tmp_path / "trl" / "trl")
    monkeypatch.chdir(tmp_path)  # a relative data path: the cache folder used to be joined twice
    first = D.load_rows("trl/trl/trl_train.parquet")
    cache = (tmp_path / "trl" / "trl" / ".studio_media").resolve()
    assert [Path(p).parent for r in first for p in r.images] == [cache, cache]
    assert first.media_written == 1 and len(list(cache.iterdir())) == 1  # two rows, the same picture: one file
    rep = D.doctor(first, None, None)
    assert rep.summary["errors"] == 0, rep.to_markdown()
    assert D.load_rows("trl/trl/trl_train.parquet").media_written == 0  # the second load writes nothing


def test_llamafactory_folder_and_dataset_info_entries(tmp_path):
    folder = E.llamafactory_folder(tmp_path / "data")
    with pytest.raises(DataError, match=r"names 4 local datasets \(mllm_demo, custom_chat, mllm_video_demo, "
                                        r"mllm_audio_demo\); pick one with --dataset"):
        D.load_rows(folder)
    demo = D.load_rows(folder, dataset="mllm_demo")
    assert len(demo) == 3 and demo[0].images == [str((folder / "mllm_demo_data" / "1.jpg").resolve())]
    same = D.load_rows(None, dataset_info=str(folder / "dataset_info.json"), dataset="mllm_demo")
    assert [r.messages for r in same] == [r.messages for r in demo]
    custom = D.load_rows(folder / "dataset_info.json", dataset="custom_chat")  # its own column/key/role names
    assert [m["role"] for m in custom[0].messages] == ["system", "user", "assistant"]
    assert custom[0].messages[0]["content"] == "You describe colours."
    assert custom[0].images == [str((folder / "mllm_demo_data" / "2.jpg").resolve())]
    rep = D.doctor(custom, None, None)
    assert "with the names of dataset_info.json entry 'custom_chat' (turns in `dialog`, keys speaker/text, " \
           "roles customer/agent)" in rep.notes[0]
    with pytest.raises(DataError, match="Entry 'alpaca_en' has no local file \\(hf_hub_url llamafactory/alpaca_en\\)"):
        D.load_rows(folder, dataset="alpaca_en")
    with pytest.raises(DataError, match="has no entry 'nope'; its local datasets are: mllm_demo, custom_chat, "):
        D.load_rows(folder, dataset="nope")
    video = D.load_rows(folder, dataset="mllm_video_demo")
    assert video[0].videos == [str((folder / "mllm_demo_data" / "1.mp4").resolve())]
    assert video[0].messages[0]["content"][0] == {"type": "video"}
    with pytest.raises(DataError, match=r"mllm_audio_demo.json row 1 holds audio \(`audios`: mllm_demo_data/1.mp3\)"):
        D.load_rows(folder, dataset="mllm_audio_demo")


def test_a_save_to_disk_folder_is_not_taken_for_llamafactory(tmp_path):
    import datasets

    E.image(tmp_path / "ds" / "a.png")
    datasets.Dataset.from_list([{"messages": [{"role": "user", "content": "<image>Q"},
                                              {"role": "assistant", "content": "A"}], "images": ["a.png"]}]
                               ).save_to_disk(str(tmp_path / "ds"))
    assert (tmp_path / "ds" / "dataset_info.json").is_file()
    rows = D.load_rows(tmp_path / "ds")
    assert rows[0].images == [str((tmp_path / "ds" / "a.png").resolve())]


# ----------------------------------------------------------------------------- RL
RL_EXPECT = {  # fixture → (prompt column, reference column, system prompt)
    "easyr1_parquet": ("problem", "answer", None),
    "easyr1_jsonl": ("problem", "answer", None),
    "easyr1_json": ("problem", "answer", None),
    "verl_parquet": ("prompt", "reward_model.ground_truth", None),
    "swift_grpo": ("messages", "solution", "Think first, then answer in <answer></answer>."),
    "r1v_geoqa": ("problem", "solution", None),
}


@pytest.mark.parametrize("name", sorted(RL_EXPECT))
def test_each_rl_format_reads_with_images_and_references(tmp_path, name):
    from studio.engine.train.data.sources import open_sources
    from studio.engine.train.rl import check_references, load_prompts

    path = E.RL_BUILDERS[name](tmp_path / name)
    text_col, ref_col, system = RL_EXPECT[name]
    assert D.detect_kind(open_sources(path)[0].first()).kind == "rl"
    prompts = load_prompts(path)
    assert len(prompts) == 4
    assert dict(prompts.text_columns) == {text_col: 4} and dict(prompts.answer_columns) == {ref_col: 4}
    p = prompts[0]
    assert len(p.images) == 1 and Path(p.images[0]).is_file()
    assert "<image>" not in p.text and p.text
    assert p.content[0] == {"type": "image"} and p.system == system
    check_references(prompts)  # every reference parses for its verifier (<answer> tags read inside)
    with pytest.raises(DataError, match="holds RL prompts .*studio rl --data"):
        D.load_rows(path)  # given to SFT: the command to use


def test_rl_prompt_keeps_tag_positions_and_the_system_prompt(tmp_path):
    from studio.engine.train.rl import load_prompts
    from studio.engine.train.rl.prompts import PromptEncoder

    E.image(tmp_path / "a.png")
    E.image(tmp_path / "b.png", "blue")
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"prompt": "Compare <image> with <image>. Which is blue?", "images": ["a.png", "b.png"],
                             "answer": "B", "system": "Answer with a letter."}) + "\n")
    [p] = load_prompts(f)
    msgs = PromptEncoder(None).messages(p)
    assert msgs[0] == {"role": "system", "content": "Answer with a letter."}
    assert [i["type"] for i in msgs[1]["content"]] == ["text", "image", "text", "image", "text"]
    assert p.text == "Compare  with . Which is blue?"


def test_verl_and_easyr1_parquet_images_are_cached_once(tmp_path):
    from studio.engine.train.rl import load_prompts

    path = E.easyr1_parquet(tmp_path)
    first = load_prompts(path)
    assert first.media_written == 4
    assert {Path(p.images[0]).parent for p in first} == {(tmp_path / ".studio_media").resolve()}
    assert load_prompts(path).media_written == 0


# ----------------------------------------------------------------------------- nothing lost silently
def audio_rows(d: Path) -> Path:
    """LLaMA-Factory's audio demo shape: an `audios` column and <audio> tags."""
    E.image(d / "a.png")
    rows = [{"messages": [{"role": "user", "content": "<image>Fine."}, {"role": "assistant", "content": "Ok."}],
             "images": ["a.png"]},
            {"messages": [{"role": "user", "content": "<audio>What is said?"},
                          {"role": "assistant", "content": "Hello."}], "audios": ["speech.mp3"]}]
    return E._json(d / "audio.json", rows, lines=False)


def test_audio_is_refused_with_the_row_in_one_line(tmp_path):
    path = audio_rows(tmp_path)
    with pytest.raises(DataError) as e:
        D.load_rows(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("audio.json row 2 holds audio (`audios`: speech.mp3); GLM-4.1V reads images and video")
    rows, rep = D.diagnose(path)  # the doctor lists it and reads the other rows
    assert len(rows) == 1
    [p] = [p for p in rep.problems if p.check == "media"]
    assert p.severity == "error" and "row 2 holds audio" in p.message
    rl = tmp_path / "rl.jsonl"
    rl.write_text(json.dumps({"prompt": "<audio>Who speaks?", "answer": "Ann"}) + "\n")
    from studio.engine.train.rl import load_prompts

    with pytest.raises(DataError, match=r"rl.jsonl row 1 \(line 1\) holds audio \(an <audio> tag\)"):
        load_prompts(rl)


def test_untagged_images_one_turn_placed_and_reported_multi_turn_refused(tmp_path):
    E.image(tmp_path / "a.png")
    one = {"messages": [{"role": "user", "content": "What colour?"},
                        {"role": "assistant", "content": E.THINK.format(x="red", y="Red.")}], "images": ["a.png"]}
    multi = {"messages": [one["messages"][0], one["messages"][1], {"role": "user", "content": "And the border?"},
                          {"role": "assistant", "content": E.THINK.format(x="white", y="White.")}],
             "images": ["a.png", "a.png"]}
    rows = D.load_rows(E._json(tmp_path / "one.jsonl", [one, one], lines=True))
    assert rows[0].messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "What colour?"}]
    rep = D.doctor(rows, None, None)
    assert "No `<image>/<video>` tags in rows 1–2 (one user turn each): their media go before the first user " \
           "text" in rep.to_markdown()
    path = E._json(tmp_path / "multi.jsonl", [one, multi], lines=True)
    with pytest.raises(DataError, match=r"multi.jsonl row 2 \(line 2\) lists 2 images but no <image>/<video> tag in "
                                         r"its 2 user turns.*put the tag where each belongs, e.g. "
                                         r"\"<image>What colour\?\""):
        D.load_rows(path)


def test_system_column_becomes_the_system_turn_and_a_different_one_is_refused(tmp_path):
    base = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "system": "Be kind."}
    rows = D.load_rows(E._json(tmp_path / "s.jsonl", [base], lines=True))
    assert rows[0].messages[0] == {"role": "system", "content": "Be kind."}
    both = {**base, "messages": [{"role": "system", "content": "Be terse."}] + base["messages"]}
    with pytest.raises(DataError, match="has a `system` column and a different system turn"):
        D.load_rows(E._json(tmp_path / "b.jsonl", [both], lines=True))


def test_tool_turns_are_refused_not_dropped(tmp_path):
    row = {"conversations": [{"from": "human", "value": "Weather?"}, {"from": "function_call", "value": "{}"},
                             {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}]}
    with pytest.raises(DataError, match=r"a 'function_call' turn \(tool use\)"):
        D.load_rows(E._json(tmp_path / "t.jsonl", [row], lines=True))


def test_doctor_counts_answers_without_loss_per_policy(tmp_path):
    folder = E.llamafactory_folder(tmp_path)
    rows = D.load_rows(folder, dataset="mllm_demo")
    last = D.doctor(rows, None, None, policy="last_thinking")
    assert last.coverage == {"policy": "last_thinking", "answers": 6, "trained": 3,
                             "untrained": [[1, 1], [2, 1], [3, 1]]}
    assert ("Loss (last_thinking): 3 of 6 assistant answers trained; 3 earlier answers are context without loss "
            "(answer 1 of rows 1–3) — policy all_turns trains every answer.") in last.notes
    every = D.doctor(rows, None, None, policy="all_turns")
    assert every.coverage["trained"] == 6 and "Loss (all_turns): 6 of 6 assistant answers trained." in every.notes


def test_each_auto_fix_names_the_command_that_applies_it(tmp_path, capsys):
    from studio.cli import main

    folder = E.llamafactory_folder(tmp_path / "data")
    rep = D.doctor(D.load_rows(folder, dataset="mllm_demo"), None, None)
    md = rep.to_markdown()
    assert "Auto-fixes: `studio doctor DATA --fix OUT --add-empty-think` fixes 6 turns (add_empty_think)." in md
    assert all("--add-empty-think" in p.fix for p in rep.problems if p.auto_fixable == "add_empty_think")
    out = tmp_path / "fixed.jsonl"
    assert main(["doctor", str(folder), "--dataset", "mllm_demo", "--no-decode", "--fix", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fixed 0 assistant turns (close_answer)" in text
    assert "6 answer-only turns were left as they are; add --add-empty-think" in text
    assert main(["doctor", str(folder), "--dataset", "mllm_demo", "--no-decode", "--fix", str(out),
                 "--add-empty-think"]) == 0
    assert "fixed 6 assistant turns (close_answer, add_empty_think)" in capsys.readouterr().out
    fixed = D.load_rows(out)
    assert D.doctor(fixed, None, None).summary["warnings"] == 0
    assert fixed[0].images == [str((folder / "mllm_demo_data" / "1.jpg").resolve())]


def test_doctor_cli_names_format_and_kind_for_sft_and_rl(tmp_path, capsys):
    from studio.cli import main

    sft = E.sharegpt(tmp_path / "s")
    assert main(["doctor", str(sft), "--no-decode"]) == 0
    out = capsys.readouterr().out
    assert "Read as ShareGPT (conversations: from/value turns, roles human/gpt/system) (2 rows)." in out
    assert "SFT data: rows have the answer to train on (`conversations` with assistant turns)." in out
    rl = E.verl_parquet(tmp_path / "r")
    assert main(["doctor", str(rl)]) == 0
    out = capsys.readouterr().out
    assert ("read as RL prompts: prompt from `prompt` (4), reference from `reward_model.ground_truth` (4) — rows "
            "have a prompt (`prompt`) and a reference answer (`reward_model.ground_truth`)") in out
    assert "4 RL prompts; every reference answer is scoreable" in out


def test_invalid_json_still_names_the_line(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]})
    (tmp_path / "j.json").write_text("[\n" + good + ",\n" + good + "\n  oops\n]")
    with pytest.raises(DataError, match=r"j.json: invalid JSON on line 4"):
        D.load_rows(tmp_path / "j.json")
    (tmp_path / "mixed.jsonl").write_text(good + "\n\n" + json.dumps(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Q"}]},
                      {"role": "assistant", "content": "A"}]}) + "\n")
    rows = D.load_rows(tmp_path / "mixed.jsonl")  # a blank line between rows of changing types still reads
    assert [r.meta["line"] for r in rows] == [1, 3]


def test_csv_cells_stay_text(tmp_path):
    import csv

    E.image(tmp_path / "a.png")
    with open(tmp_path / "r.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["problem", "answer", "images"])
        w.writeheader()
        w.writerow({"problem": "<image>Code?", "answer": "007", "images": json.dumps(["a.png"])})
    from studio.engine.train.rl import load_prompts

    [p] = load_prompts(tmp_path / "r.csv")
    assert p.answer == "007" and p.images == [str((tmp_path / "a.png").resolve())]


def test_sft_cli_takes_a_dataset_info_entry_and_keeps_it_in_the_run_config(tmp_path, capsys):
    import yaml

    from studio.cli import main

    folder = E.llamafactory_folder(tmp_path / "data")
    runs = tmp_path / "runs"
    info = str(folder / "dataset_info.json")
    assert main(["sft", "--dataset-info", info, "--dataset", "custom_chat", "--runs-dir", str(runs), "--dry-run"]) == 0
    [run] = list(runs.iterdir())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["dataset_info"] == info and cfg["dataset"] == "custom_chat" and cfg["data"] == ""
    assert main(["sft", "--data", str(folder), "--runs-dir", str(runs), "--dry-run"]) == 2
    assert "names 4 local datasets (mllm_demo, custom_chat, mllm_video_demo, mllm_audio_demo); pick one with " \
           "--dataset NAME" in capsys.readouterr().err
    assert len(list(runs.iterdir())) == 1  # the refused start made no run folder


def test_sft_data_given_to_rl_names_the_command(tmp_path):
    from studio.engine.train.rl import load_prompts

    with pytest.raises(DataError, match=r"sharegpt.jsonl holds SFT data \(rows have the answer to train on .*\), not RL prompts "
                                        r"with reference answers; train on it with `studio sft --data"):
        load_prompts(E.sharegpt(tmp_path))
