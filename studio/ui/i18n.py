"""Two UI languages, English (``en``) and Simplified Chinese (``zh``), switchable at runtime.

One catalog, two ways to use it:

* **Static text** (labels, info, placeholders, buttons, Markdown written at build time):
  ``t("sft.run_name")`` returns a ``gradio.i18n.I18nData``; the browser translates it with
  the catalog sent in the page config (``gr.I18n``), and re-translates it when the locale
  changes, so switching language keeps every value the user typed. A string may hold one
  ``t()`` marker plus literal text around it (``t("x") + "\\n```bash …```"``): gradio's
  frontend replaces the first marker and keeps the rest.
* **Run-time text** (``gr.Info``/``gr.Warning``/``gr.Error`` messages, status lines, chat
  titles produced by handlers): ``tr("key", lang, **fmt)`` on the server, in the language of
  the request being served (:func:`current_language`): the session's choice in the header
  switch, else the app default (``AppContext.language``); with the ``"auto"`` default the
  browser's ``Accept-Language``, else English.

Engine messages (:class:`~studio.errors.StudioError` text from ``studio/engine``) are
dynamic English sentences; :func:`error_text` keeps them English and adds a translated
prefix (``错误：`` in Chinese), :func:`gr_error` makes the ``gr.Error`` with a translated
title.

The header switch (:func:`language_switch`) sets the browser locale through the
frontend's own ``changeLocale`` (the function behind gradio's footer *Settings →
Language* chooser; it finds gradio's ``core-*.js`` module among the loaded resources and
imports it, which returns the same module instance), remembers the choice in
``localStorage`` and tells the server, which keeps it per session
(:func:`set_session_language`). Tab labels are sent again on every switch: gradio computes
the tab bar once, so tabs not opened yet would keep the old language. A change made in the
footer chooser is noticed through a hidden Markdown holding the catalog's language code
(its text changes with the locale) and handled the same way. If a future gradio drops the
``changeLocale`` export, the switch logs a console warning and only server-side text follows.

Not translated: gradio's own texts that its zh-CN bundle lacks (the upload box's "Drop File
Here"), the toast header (gradio shows the capitalised type, "Error"), example questions
(they are inputs), engine sentences (English behind the prefix), model output.

Frontend strings go through svelte-i18n's ICU message format: static (``t()``) strings
must not contain ``{`` or ``}`` (tests/test_i18n.py checks). Run-time strings use
``str.format`` placeholders (``{n}``).
"""

# No `from __future__ import annotations`: gradio finds `gr.Request` by its evaluated annotation.
import logging
import re
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

log = logging.getLogger(__name__)

#: Supported UI languages, in switch order.
LANGS = ("en", "zh")
#: Names shown in the header switch (each in its own language).
LANG_NAMES = {"en": "English", "zh": "简体中文"}
#: The gradio frontend locale each language selects (its bundled zh strings are zh-CN).
FRONTEND_LOCALE = {"en": "en", "zh": "zh-CN"}
#: ``elem_id`` of the header switch, and of its hidden language-code text and sync button.
SWITCH_ID = "studio-lang"
CODE_ID = "studio-lang-code"
SYNC_ID = "studio-lang-sync"
#: ``localStorage`` key of the browser's saved choice.
STORAGE_KEY = "studio.lang"

# key: (English, 简体中文). Keys are "<area>.<name>". Keep GRPO / LoRA / SFT / RLCS / QLoRA in
# Latin letters; use the field's usual Chinese terms (推理/思考, 回答, 微调, 强化学习, 课程采样,
# 适配器, 奖励, 学习率, 秩 …).
_ENTRIES: dict[str, tuple[str, str]] = {
    # ------------------------------------------------------------------ app / common
    "app.lang_label": ("Language", "界面语言"),
    "app.lang_code": ("en", "zh"),  # read by the page to notice a locale change made elsewhere
    "tab.chat": ("Chat", "对话"),
    "tab.compare": ("Compare", "对比"),
    "tab.sft": ("SFT", "SFT 微调"),
    "tab.rl": ("RL", "RL 强化学习"),
    "tab.runs": ("Runs", "训练记录"),
    "app.public_off_sft": (
        "### SFT is off on this public Space\n"
        "Training needs a GPU of your own. **Duplicate this Space** to a private GPU Space, "
        "or run it anywhere with the command below.",
        "### 此公开 Space 已关闭 SFT 微调\n"
        "训练需要你自己的 GPU。请把此 Space **复制**为私有 GPU Space，或在任意机器上运行下面的命令。"),
    "app.public_off_rl": (
        "### RL is off on this public Space\n"
        "Training needs a GPU of your own. **Duplicate this Space** to a private GPU Space, "
        "or run it anywhere with the command below.",
        "### 此公开 Space 已关闭 RL 强化学习\n"
        "训练需要你自己的 GPU。请把此 Space **复制**为私有 GPU Space，或在任意机器上运行下面的命令。"),
    "err.title": ("Error", "错误"),
    "err.prefix": ("{msg}", "错误：{msg}"),
    "err.unexpected": ("Unexpected error ({kind}); see the server log.",
                       "意外错误（{kind}），详情见服务器日志。"),
    "common.try_in_chat": ("Try it in Chat", "在对话页试用"),
    "common.compare_with_base": ("Compare with base", "与基础模型对比"),
    "common.export_dir": ("Export folder for the merged model", "合并后模型的导出目录"),
    "common.export_btn": ("Export merged (and verify the round trip)", "导出合并模型（并校验往返一致）"),
    "common.after_training": ("After training", "训练之后"),
    "common.evaluate_btn": ("Evaluate (before / after)", "评测（训练前 / 训练后）"),
    "common.full_model": ("This run fine-tuned the whole model: `{path}`. Use it as a model (Compare side B, or "
                          "`studio ui --model {path}`); there is no adapter to hand over or merge.",
                          "此运行对整个模型做了微调：`{path}`。请把它当作模型使用（对比页 B 侧，或 "
                          "`studio ui --model {path}`）；没有可移交或合并的适配器。"),
    "common.lora_rank": ("LoRA rank", "LoRA 秩（rank）"),
    "common.lora_alpha": ("LoRA alpha", "LoRA alpha"),
    "common.learning_rate": ("Learning rate", "学习率"),
    "common.seed": ("Seed", "随机种子"),
    "common.max_steps": ("Max steps", "最大步数"),
    "common.show_config": ("Show config", "显示配置"),
    "common.temperature": ("Temperature (0 = greedy)", "温度（0 = 贪心解码）"),
    "common.top_p": ("Top-p", "Top-p"),
    "common.top_k": ("Top-k (0 = off)", "Top-k（0 = 关闭）"),
    "common.stop": ("Stop", "停止"),
    "common.status": ("Status", "状态"),
    "common.log_tail": ("train.log (tail)", "train.log（末尾）"),
    "common.no_run_yet": ("No run yet; start one first.", "还没有训练运行，请先开始一次。"),
    "common.no_adapter_yet": ("This run has no adapter or checkpoint yet; wait for the first save.",
                              "此运行还没有适配器或检查点，请等待第一次保存。"),
    "common.adapter_for_chat": (
        "Adapter `{path}` is set for the **Chat** tab: open it and pick/reload the model to chat with "
        "base + adapter.",
        "适配器 `{path}` 已设置到**对话**页：打开该页并选择/重新加载模型，即可用基础模型 + 适配器对话。"),
    "common.adapter_for_compare": (
        "Adapter `{path}` is set for the **Compare** tab: side B runs base + adapter, side A the base.",
        "适配器 `{path}` 已设置到**对比**页：B 侧运行基础模型 + 适配器，A 侧运行基础模型。"),
    "common.merged_verified": (
        "Merged model saved to `{path}`; round trip verified: greedy output of the merged model equals "
        "base + adapter.",
        "合并后的模型已保存到 `{path}`；往返校验通过：合并模型的贪心输出与基础模型 + 适配器一致。"),
    "common.merged_unverified": ("Merged model saved to `{path}`; round trip NOT verified.",
                                 "合并后的模型已保存到 `{path}`；往返校验**未通过**。"),
    # ------------------------------------------------------------------ SFT tab
    "sft.intro": (
        "Fine-tune with LoRA into the `<think>…</think><answer>…</answer>` format. Check the data first: "
        "the doctor lists problems per row, the preview shows which tokens carry loss.",
        "用 LoRA 微调为 `<think>…</think><answer>…</answer>` 格式。请先检查数据：数据体检会按行列出问题，"
        "预览会显示哪些 token 计入损失。"),
    "sft.recipe_btn": ("▶ Start the workshop recipe (toy-base → think/answer, ~15 min on 2 CPU cores)",
                       "▶ 开始工作坊配方（toy-base → 思考/回答格式，2 核 CPU 约 15 分钟）"),
    "sft.finetuning": ("Fine-tuning", "微调方式"),
    "sft.full": ("Full (language model)", "全参数（语言模型）"),
    "sft.finetuning_info": ("LoRA: a small adapter (<run>/adapter). Full: every language-model weight "
                            "(<run>/model); small models or memory to spare.",
                            "LoRA：小适配器（<run>/adapter）。全参数：语言模型的全部权重（<run>/model）；适合小模型或显存充足时。"),
    "sft.eval_data": ("Held-out prompts scored during training (optional)", "训练中评测的留出集提示（可选）"),
    "sft.eval_data_info": ("A prompt JSONL (studio tasks --eval-n writes one): format rate and accuracy by "
                           "generation, drawn as curves.",
                           "提示 JSONL（studio tasks --eval-n 可生成）：按生成结果计算格式正确率与准确率，并绘制曲线。"),
    "sft.upload": ("Upload a dataset (.jsonl/.json/.csv/.parquet)", "上传数据集（.jsonl/.json/.csv/.parquet）"),
    "sft.path": ("…or a path on the server (media paths are relative to the file)",
                 "…或服务器上的路径（媒体路径相对于该文件）"),
    "sft.sample_btn": ("Use the sample set", "使用示例数据集"),
    "sft.model": ("Base model (hub id, folder or 'embedded')", "基础模型（Hub ID、本地目录或 'embedded'）"),
    "sft.max_length": ("Max length (tokens)", "最大长度（token）"),
    "sft.policy": ("What is trained (loss policy)", "训练哪些内容（损失策略）"),
    "sft.policy_info": (
        "last_thinking: train the last turn's thinking + answer; earlier turns keep only their answer "
        "(thinking removed, as at inference) and carry no loss. answer_only: train only the last turn's "
        "answer; its thinking stays as context without loss. all_turns: train every assistant turn as "
        "written, thinking included.",
        "last_thinking：训练最后一轮的思考 + 回答；之前各轮只保留回答（与推理时一样去掉思考），不计损失。"
        "answer_only：只训练最后一轮的回答，其思考作为上下文保留但不计损失。"
        "all_turns：按原样训练每一轮助手回复，包括思考。"),
    "sft.oversize": ("Rows longer than max length", "超过最大长度的样本"),
    "sft.oversize_info": ("resize: shrink images so no image span is cut; skip: leave the row out",
                          "resize：缩小图片，保证不截断图像片段；skip：跳过该样本"),
    "sft.doctor_acc": ("1 · Data doctor", "1 · 数据体检"),
    "sft.doctor_btn": ("Check the data", "检查数据"),
    "sft.problems": ("Problems", "问题列表"),
    "sft.fixes": ("Safe auto-fixes", "安全的自动修复"),
    "sft.fix.close_answer": (
        "append the missing </answer> to assistant turns that open <answer> but never close it",
        "为打开了 <answer> 却未闭合的助手回复补上 </answer>"),
    "sft.fix.add_empty_think": (
        "turn answer-only assistant turns into <think>\\n</think><answer>…</answer>",
        "把只有回答的助手回复改成 <think>\\n</think><answer>…</answer>"),
    "sft.fix.drop_answer_tags": (
        "remove GLM-4.1V's <answer>/</answer> tags from rows for a GLM-4.6V model",
        "为 GLM-4.6V 模型去掉数据中 GLM-4.1V 的 <answer>/</answer> 标签"),
    "sft.col.row": ("row", "行"),
    "sft.col.line": ("line", "文件行号"),
    "sft.col.severity": ("severity", "严重程度"),
    "sft.col.check": ("check", "检查项"),
    "sft.col.problem": ("problem", "问题"),
    "sft.col.fix": ("fix", "修复建议"),
    "sft.col.auto_fix": ("auto-fix", "可自动修复"),
    "sft.fix_btn": ("Apply auto-fix (writes <name>.fixed.jsonl next to the data)",
                    "应用自动修复（在数据旁写入 <name>.fixed.jsonl）"),
    "sft.fixed": ("Fixed {n} assistant turns; the path now points at {name}. Run the doctor again.",
                  "已修复 {n} 条助手回复；路径已指向 {name}。请再运行一次数据体检。"),
    "sft.preview_acc": ("2 · Trained-token preview", "2 · 训练 token 预览"),
    "sft.row": ("Row", "行号"),
    "sft.preview_btn": ("Show what this row trains", "显示这一行训练的内容"),
    "sft.preview": ("Highlighted = carries loss", "高亮 = 计入损失"),
    "sft.settings_acc": ("3 · Settings", "3 · 设置"),
    "sft.run_name": ("Run name", "运行名称"),
    "sft.lora_dropout": ("LoRA dropout", "LoRA dropout"),
    "sft.targets": ("Language-model layers with LoRA (the vision tower stays frozen)",
                    "加 LoRA 的语言模型层（视觉编码器保持冻结）"),
    "sft.train_merger": ("Also LoRA on the vision→language merger", "同时在视觉→语言融合层（merger）上加 LoRA"),
    "sft.qlora": ("QLoRA (4-bit NF4 base, CUDA only)", "QLoRA（4 位 NF4 基础权重，仅限 CUDA）"),
    "sft.epochs": ("Epochs", "训练轮数（epoch）"),
    "sft.max_steps": ("Max steps (0 = use epochs)", "最大步数（0 = 按轮数）"),
    "sft.batch_size": ("Batch size", "批大小"),
    "sft.grad_accum": ("Gradient accumulation", "梯度累积步数"),
    "sft.image_max_pixels": ("Image pixel budget (0 = processor default)", "图像像素预算（0 = 处理器默认值）"),
    "sft.eval_split": ("Eval split (fraction)", "验证集比例"),
    "sft.save_steps": ("Save every N steps", "每 N 步保存一次"),
    "sft.train_md": ("### 4 · Train", "### 4 · 训练"),
    "sft.after_acc": ("5 · After training", "5 · 训练之后"),
    "sft.pick_dataset": ("Pick a dataset: upload a file, type a path, or press 'Use the sample set'.",
                         "请选择数据集：上传文件、输入路径，或点击“使用示例数据集”。"),
    "sft.processor_failed": ("Could not load the processor of {model}: {why}", "无法加载 {model} 的处理器：{why}"),
    "sft.no_row": ("Row {n} does not exist; the data has {rows} rows.", "第 {n} 行不存在；数据共有 {rows} 行。"),
    # ------------------------------------------------------------------ Compare tab
    "cmp.intro": (
        "Run one prompt on two models. **Base** models are pretrained, not chat models: they get a "
        "completion-style prompt (`Question: …\\nAnswer:`) with a token cap and no thinking. Both sides use "
        "the same sampling settings and seed.",
        "用同一个提示词运行两个模型。**Base** 模型是预训练模型而非对话模型：它们使用续写式提示"
        "（`Question: …\\nAnswer:`），有 token 上限且不思考。两侧使用相同的采样设置和随机种子。"),
    "cmp.model": ("Model", "模型"),
    "cmp.model_info": ("hub id, local folder, embedded or a toy model", "Hub ID、本地目录、embedded 或玩具模型"),
    "cmp.adapter": ("LoRA adapter", "LoRA 适配器"),
    "cmp.adapter_info": ("runs on the same loaded weights, switched on only for this side",
                         "与基础模型共用已加载的权重，只在这一侧启用"),
    "cmp.mode": ("Prompt style", "提示风格"),
    "cmp.mode_base": ("Base: completion prompt (no chat roles, no thinking)", "Base：续写式提示（无对话角色、无思考）"),
    "cmp.mode_chat": ("Chat: chat template (thinking shown)", "Chat：对话模板（显示思考过程）"),
    "cmp.thinking": ("Thinking", "思考模式"),
    "cmp.thinking_info": ("chat style only; off needs a model with a thinking switch (GLM-4.6V-Flash)",
                          "仅对 Chat 风格有效；关闭需要带思考开关的模型（GLM-4.6V-Flash）"),
    "cmp.no_switch": ("Side {side}: {model} is a {family} model with no thinking switch; it always thinks. Turn "
                      "Thinking {side} back on, or pick a GLM-4.6V-Flash-style model for side {side}; to cap "
                      "thinking, use the thinking budget in Settings.",
                      "{side} 侧：{model} 是 {family} 模型，没有思考开关，总是先思考。请重新打开“思考模式 {side}”，"
                      "或为 {side} 侧选择 GLM-4.6V-Flash 类模型；如需限制思考长度，请在设置中使用思考预算。"),
    "cmp.plan_btn": ("Memory plan", "显存规划"),
    "cmp.placeholder": ("One question for both sides; attach up to 10 images, or 1 video, or 1 PDF…",
                        "两侧共用一个问题；可附加最多 10 张图片，或 1 段视频，或 1 个 PDF…"),
    "cmp.run": ("Compare ▶", "开始对比 ▶"),
    "cmp.settings_acc": ("Settings (shared by both sides)", "设置（两侧共用）"),
    "cmp.seed": ("Seed (empty = random, same for both)", "随机种子（留空 = 随机，两侧相同）"),
    "cmp.seed_ph": ("random", "随机"),
    "cmp.bad_seed": ("Seed must be a whole number (or empty for a random one), not “{value}”.",
                     "随机种子必须是整数（留空则随机），而不是“{value}”。"),
    "cmp.max_new": ("Max new tokens (chat sides)", "最大新 token 数（Chat 侧）"),
    "cmp.base_cap": ("Token cap (base sides)", "token 上限（Base 侧）"),
    "cmp.think_budget": ("Thinking budget (chat sides only; 0 = off)", "思考预算（仅 Chat 侧；0 = 关闭）"),
    "cmp.system": ("System prompt (chat: system role; base: plain text on top)",
                   "系统提示词（Chat：system 角色；Base：置于开头的纯文本）"),
    "cmp.few_shot": ("Few-shot examples for base sides, one `question => answer` per line",
                     "Base 侧的少样本示例，每行一个 `问题 => 答案`"),
    "cmp.few_shot_ph": ("How many legs does a cat have? => 4", "猫有几条腿？=> 4"),
    "cmp.download": ("Download votes.jsonl", "下载 votes.jsonl"),
    "cmp.vote.A": ("A is better", "A 更好"),
    "cmp.vote.B": ("B is better", "B 更好"),
    "cmp.vote.tie": ("Tie", "平局"),
    "cmp.vote.both_bad": ("Both are bad", "都不好"),
    "cmp.head_base": ("*Base model — completion prompt, no chat roles, no thinking switch*",
                      "*Base 模型——续写式提示，无对话角色，无思考开关*"),
    "cmp.head_chat": ("*Chat template — thinking shown collapsible*", "*对话模板——思考过程可折叠显示*"),
    "cmp.head_chat_off": ("*Chat template — thinking switched off (answers at once)*",
                          "*对话模板——已关闭思考（直接回答）*"),
    "cmp.stat_thinking": ("thinking {t} / answer {a} tokens", "思考 {t} / 回答 {a} token"),
    "cmp.stat_forced": ("forced answer: {v}", "强制回答：{v}"),
    "cmp.yes": ("yes", "是"),
    "cmp.no": ("no", "否"),
    "cmp.stat_cut": ("cut at the token cap", "达到 token 上限被截断"),
    "cmp.stat_stopped": ("stopped", "已停止"),
    "cmp.pdf_pages": ("*(PDF: {n} pages sent as images)*", "*（PDF：{n} 页以图片形式发送）*"),
    "cmp.pdf_page": ("*(PDF: 1 page sent as images)*", "*（PDF：1 页以图片形式发送）*"),
    "cmp.not_done": ("**Not done:**", "**未完成：**"),
    "cmp.plan": ("**Memory plan:**", "**显存规划：**"),
    "cmp.note": ("*Note:*", "*注：*"),
    "cmp.side_A": ("Side A", "A 侧"),
    "cmp.side_B": ("Side B", "B 侧"),
    "cmp.need_question": ("Type a question (or attach an image, video or PDF) before comparing.",
                          "请先输入问题（或附加图片、视频或 PDF）再对比。"),
    "cmp.loading": ("*Loading models…*", "*正在加载模型…*"),
    "cmp.generating": ("*Generating…*", "*正在生成…*"),
    "cmp.which_better": ("Seed {seed} on both sides. Which answer is better?", "两侧随机种子均为 {seed}。哪个回答更好？"),
    "cmp.stopped_no_vote": ("Stopped before both sides finished; there is nothing to vote on.",
                            "两侧未全部完成就已停止，没有可投票的内容。"),
    "cmp.failed": ("Comparison failed ({kind}: {msg}). The error was logged; try again.",
                   "对比失败（{kind}：{msg}）。错误已记录，请重试。"),
    "cmp.stopping": ("*Stopping…*", "*正在停止…*"),
    "cmp.public_adapter": ("This public Space only loads adapters trained here; pick one from the list.",
                           "此公开 Space 只加载在这里训练的适配器，请从列表中选择。"),
    "cmp.recorded_one": ("Recorded **{label}** (1 vote in `{path}`).", "已记录 **{label}**（`{path}` 中共 1 票）。"),
    "cmp.recorded": ("Recorded **{label}** ({n} votes in `{path}`).", "已记录 **{label}**（`{path}` 中共 {n} 票）。"),
    "cmp.few_shot_form": ("Few-shot line {i} needs the form `question => answer`.",
                          "少样本示例第 {i} 行需要写成 `问题 => 答案` 的形式。"),
    "cmp.few_shot_empty": ("Few-shot line {i} needs a question and an answer around `=>`.",
                           "少样本示例第 {i} 行的 `=>` 两侧都需要有问题和答案。"),
    # ------------------------------------------------------------------ RL tab
    "rl.recipe_btn": ("▶ Start the workshop recipe (toy-thinking, RLCS on shapes counting)",
                      "▶ 开始工作坊配方（toy-thinking，在形状计数上做 RLCS）"),
    "rl.intro": (
        "### GRPO with curriculum sampling (RLCS)\n"
        "Prompts with a verifiable answer → G samples each → rewards → the curriculum re-weights difficulty "
        "tiers and keeps the groups closest to half right. Teach the `<think>…</think><answer>…</answer>` "
        "format in the **SFT** tab first; the format gate warns otherwise.",
        "### 带课程采样的 GRPO（RLCS）\n"
        "带可验证答案的提示 → 每个采样 G 次 → 计算奖励 → 课程采样重新调整各难度层级的权重，并保留最接近一半答对的组。"
        "请先在 **SFT** 标签页教会模型 `<think>…</think><answer>…</answer>` 格式；否则格式检查会发出警告。"),
    "rl.data": ("Prompt file (JSONL)", "提示文件（JSONL）"),
    "rl.data_info": ("rows: prompt, images/videos, answer, task_type, difficulty",
                     "每行字段：prompt、images/videos、answer、task_type、difficulty"),
    "rl.eval_data": ("Held-out file (optional)", "留出集文件（可选）"),
    "rl.sample_btn": ("Sample set (sample_data/rl: 38 prompts, 12 held out)",
                      "示例数据集（sample_data/rl：38 个提示，12 个留出）"),
    "rl.upload": ("…or upload a JSONL", "…或上传 JSONL 文件"),
    "rl.model_info": ("needs the think/answer format: the workshop model or an SFT'd one",
                      "需要已掌握 think/answer 格式的模型：工作坊模型或经过 SFT 的模型"),
    "rl.adapter": ("Start from adapter (SFT run's adapter folder, optional)", "从适配器开始（SFT 运行的适配器目录，可选）"),
    "rl.curriculum": ("Curriculum", "课程采样"),
    "rl.curriculum_info": ("uniform = the baseline (no tiers, no expansion)", "uniform = 基线（无难度层级、无扩展）"),
    "rl.rewards": ("Reward functions (summed)", "奖励函数（求和）"),
    "rl.group_size": ("Group size G", "组大小 G"),
    "rl.batch": ("Completions per step", "每步生成数"),
    "rl.batch_info": ("multiple of G", "须为 G 的倍数"),
    "rl.t_budget": ("Thinking budget T", "思考预算 T"),
    "rl.a_budget": ("Answer budget A", "回答预算 A"),
    "rl.eval_every": ("Eval every (steps)", "评估间隔（步）"),
    "rl.grading": ("Offline grading (k samples per prompt)", "离线难度分级（每个提示采样 k 次）"),
    "rl.cold": ("Cold start (every p = 0.5)", "冷启动（所有 p = 0.5）"),
    "rl.vllm": ("vLLM colocate generation", "vLLM 同卡（colocate）生成"),
    "rl.vllm_ok": ("available", "可用"),
    "rl.vllm_missing": ("unavailable:", "不可用："),
    "rl.config_acc": ("Config (YAML) and the equivalent CLI command", "配置（YAML）与等效命令行"),
    "rl.cli": ("CLI (new run from these settings)", "命令行（按这些设置开始新的运行）"),
    "rl.train_md": ("### Train", "### 训练"),
    "rl.run_pick": ("Watch / resume an earlier run", "查看 / 继续之前的运行"),
    "rl.rollouts_md": ("#### Sampled rollouts (last step)", "#### 采样的 rollout（最近一步）"),
    "rl.no_run": ("_No run yet._", "_还没有训练运行。_"),
    "rl.no_run_selected": ("_No run selected._", "_未选择运行。_"),
    "rl.no_run_yet": ("No run yet; start one first (or pick one above).", "还没有训练运行，请先开始一次（或在上方选择一个）。"),
    "rl.adapter_for_chat": ("Adapter `{path}` is set for the **Chat** tab: open it to chat with base + adapter.",
                            "适配器 `{path}` 已设置到**对话**页：打开该页即可用基础模型 + 适配器对话。"),
    "rl.thinking_chars": ("thinking ({n} chars)", "思考（{n} 个字符）"),
    "rl.no_rollouts": ("No rollouts yet.", "还没有 rollout。"),
    "rl.col.step": ("step", "步"),
    "rl.col.prompt": ("prompt", "提示"),
    "rl.col.completion": ("completion", "生成结果"),
    "rl.col.reward": ("reward", "奖励"),
    "rl.col.tier": ("tier", "难度层级"),
    "rl.forced": ("forced", "强制回答"),
    "rl.truncated": ("truncated", "已截断"),
    "rl.answer": ("answer:", "答案："),
    "rl.format_gate": ("Format gate: {rate} format-correct.", "格式检查：{rate} 格式正确。"),
    "rl.status": ("**Status:**", "**状态：**"),
    # ------------------------------------------------------------------ Runs tab
    "runs.intro": (
        "Every training run is a folder with its config, metrics, log, checkpoints and adapter "
        "(the same table: `studio runs`). Runs folder:",
        "每次训练运行都是一个目录，包含配置、指标、日志、检查点和适配器（命令行中的同一张表：`studio runs`）。运行目录："),
    "runs.refresh": ("Refresh", "刷新"),
    "runs.col.id": ("id", "运行 ID"),
    "runs.col.kind": ("kind", "类型"),
    "runs.col.status": ("status", "状态"),
    "runs.col.step": ("step", "步数"),
    "runs.col.loss_reward": ("loss/reward", "损失/奖励"),
    "runs.col.started": ("started", "开始时间"),
    "runs.run": ("Run", "运行"),
    "runs.table": ("Runs", "训练运行"),
    "runs.summary": ("Summary (status.json, final metrics, paths)", "摘要（status.json、最终指标、路径）"),
    "runs.export_acc": ("Export: merge this run's adapter into its base model", "导出：把此运行的适配器合并进基础模型"),
    "runs.export_md": (
        "Loads the base model, merges the adapter (PEFT `merge_and_unload`), saves safetensors + processor, "
        "then reloads the folder and checks that greedy output matches base + adapter before keeping it. "
        "Same as `studio export --adapter … --out …`.",
        "加载基础模型，合并适配器（PEFT `merge_and_unload`），保存 safetensors 权重和处理器，然后重新加载该目录，"
        "确认贪心输出与基础模型 + 适配器一致后才保留。等同于 `studio export --adapter … --out …`。"),
    "runs.out_dir": ("Output folder", "输出目录"),
    "runs.out_dir_ph": ("merged/<run id>", "merged/<运行 ID>"),
    "runs.merge_btn": ("Merge and verify", "合并并校验"),
    "runs.export_report": ("Export report", "导出报告"),
    "runs.no_such_run_in": ("No run named {id} in {dir}.", "{dir} 中没有名为 {id} 的运行。"),
    "runs.no_config": ("# no config.yaml in this run", "# 此运行没有 config.yaml"),
    "runs.export_off": ("Export is turned off on this public app.", "此公开应用已关闭导出功能。"),
    "runs.pick_first": ("Pick a run first.", "请先选择一个运行。"),
    "runs.no_such_run": ("No run named {id}; press Refresh.", "没有名为 {id} 的运行，请点击“刷新”。"),
    "runs.no_adapter": ("Run {id} has no adapter or checkpoint yet; wait for the first save.",
                        "运行 {id} 还没有适配器或检查点；请等待第一次保存。"),
    "runs.merged_checkpoint": ("Merged the run's last checkpoint ({checkpoint}), verified and saved to {path}.",
                               "已合并该运行的最后一个检查点（{checkpoint}），校验后保存到 {path}。"),
    "runs.export_failed": ("Export failed unexpectedly ({kind}); see the server log.",
                           "导出意外失败（{kind}），详情见服务器日志。"),
    "runs.merged": ("Merged model verified and saved to {path}.", "合并后的模型已校验并保存到 {path}。"),
    # ------------------------------------------------------------------ Chat tab
    "chat.embedded_notice": (
        "Tiny model built in code, random weights: the text is not meaningful; the pipeline is real.",
        "代码构建的微型模型，使用随机权重：生成的文字没有意义，但整条流程是真实的。"),
    "chat.workshop_notice": (
        "Workshop model **toy-thinking**: a 4.0 M-parameter GLM-4.1V trained on 2 CPU cores on "
        "synthetic scenes (shapes, counts, positions, sizes, digits). It thinks and answers in the GLM "
        "format about such scenes (first example); on real photos its words are not meaningful.",
        "工作坊模型 **toy-thinking**：在 2 核 CPU 上用合成场景（形状、计数、位置、大小、数字）训练的 400 万参数 "
        "GLM-4.1V。它会按 GLM 格式对这类场景先思考再回答（见第一个示例）；对真实照片，它的文字没有意义。"),
    "chat.placeholder": ("Ask about a photo, a video clip or a PDF. Drop files into the box below.",
                         "可以就照片、视频片段或 PDF 提问。把文件拖到下方输入框即可。"),
    "chat.box_placeholder": ("Type a question; attach up to 10 images, or 1 video, or 1 PDF…",
                             "输入问题；可附加最多 10 张图片，或 1 段视频，或 1 个 PDF…"),
    "chat.loading": ("⏳ Loading model `{name}`: {phase} ({s} s). Look around meanwhile; chat answers once it is ready.",
                     "⏳ 正在加载模型 `{name}`：{phase}（{s} 秒）。可以先浏览；模型就绪后即可对话。"),
    "chat.load_failed": ("❌ Model `{name}` did not load: {error}", "❌ 模型 `{name}` 加载失败：{error}"),
    "chat.regenerate": ("Regenerate", "重新生成"),
    "chat.clear": ("Clear", "清空"),
    "chat.examples": ("Examples (sample_data/)", "示例（sample_data/）"),
    "chat.system": ("System prompt", "系统提示词"),
    "chat.optional": ("(optional)", "（可选）"),
    "chat.model_md": ("Model:", "模型："),
    "chat.no_adapter": ("none (base model)", "无（基础模型）"),
    "chat.adapter_info": ("A trained adapter folder on top of the base model (SFT tab → Try it).",
                          "叠加在基础模型上的已训练适配器目录（SFT 微调页 → 在对话页试用）。"),
    "chat.find_adapters": ("Find adapters", "查找适配器"),
    "chat.sampling": ("Sampling", "采样"),
    "chat.thinking_acc": ("Thinking", "思考"),
    "chat.thinking": ("Think before answering", "先思考再回答"),
    "chat.thinking_info": ("On: the model reasons first (shown in a Thinking block). Off: it answers at once "
                           "(enable_thinking=False).",
                           "开：模型先推理（显示在“思考”块中）。关：直接回答（enable_thinking=False）。"),
    "chat.thinking_fixed": ("This model always thinks: GLM-4.1V models have no thinking switch. Use the thinking "
                            "budget below to cap it.",
                            "此模型总是先思考：GLM-4.1V 系列没有思考开关。可用下方的思考预算限制思考长度。"),
    "chat.no_switch": ("This {family} model has no thinking switch: it always thinks. Turn Thinking back on; to cap "
                       "it, use the thinking budget.",
                       "此 {family} 模型没有思考开关，总是先思考。请重新打开“思考模式”；如需限制，请使用思考预算。"),
    "chat.rep": ("Repetition penalty", "重复惩罚"),
    "chat.max_new": ("Max new tokens", "最大新 token 数"),
    "chat.think_budget": ("Thinking budget (tokens, 0 = off)", "思考预算（token，0 = 关闭）"),
    "chat.think_budget_info": ("When spent without </think>, the answer is forced.",
                               "预算用完仍未出现 </think> 时，强制开始回答。"),
    "chat.answer_budget": ("Answer budget after a forced answer (tokens)", "强制回答后的回答预算（token）"),
    "chat.video": ("Video", "视频"),
    "chat.fps": ("Frames per second", "每秒帧数"),
    "chat.max_frames": ("Max frames", "最大帧数"),
    "chat.pdf_pages": ("*({name}: {n} pages sent as images)*", "*（{name}：{n} 页以图片形式发送）*"),
    "chat.pdf_page": ("*({name}: {n} page sent as images)*", "*（{name}：{n} 页以图片形式发送）*"),
    "chat.frames_from": ("{n} frames sampled from {s} s", "从 {s} 秒中采样了 {n} 帧"),
    "chat.frames": ("{n} frames sampled", "采样了 {n} 帧"),
    "chat.too_long": ("The conversation is {n} tokens; this model reads at most {limit}. Shorten the message, "
                      "use fewer/smaller images, or clear the chat.",
                      "对话长度为 {n} 个 token，而此模型最多读取 {limit} 个。请缩短消息、减少图片数量或尺寸，或清空对话。"),
    "chat.failed": ("Generation failed ({kind}: {msg}). The error was logged; try again or clear the chat.",
                    "生成失败（{kind}：{msg}）。错误已记录，请重试或清空对话。"),
    "chat.need_message": ("Type a message (or attach an image, video or PDF) before sending.",
                          "请先输入消息（或附加图片、视频或 PDF）再发送。"),
    "chat.too_many_chars": ("The message is {n} characters; the limit is {limit}. Shorten it or split it into "
                            "several turns.",
                            "消息长度为 {n} 个字符，上限为 {limit}。请缩短，或拆成几轮发送。"),
    "chat.nothing_to_regenerate": ("Nothing to regenerate yet: send a message first.", "还没有可重新生成的内容：请先发送一条消息。"),
    "chat.visual_tokens": ("≈ **{n} visual tokens** ({what})", "≈ **{n} 个视觉 token**（{what}）"),
    "chat.visual_token": ("≈ **{n} visual token** ({what})", "≈ **{n} 个视觉 token**（{what}）"),
    "chat.stopped_queued": ("Stopped before it started: nothing was generated.", "在开始前已停止：没有生成任何内容。"),
    "chat.what_image": ("{n} image", "{n} 张图片"),
    "chat.what_images": ("{n} images", "{n} 张图片"),
    "chat.what_pdf_page": ("PDF, {n} page", "PDF，{n} 页"),
    "chat.what_pdf_pages": ("PDF, {n} pages", "PDF，{n} 页"),
    "chat.what_video_frames": ("video, {n} frames", "视频，{n} 帧"),
    "chat.what_video": ("video", "视频"),
    # ------------------------------------------------------------------ chat rendering (render.py)
    "render.thinking": ("Thinking", "思考过程"),
    "render.truncated": ("thinking truncated", "思考被截断"),
    "render.truncated_paren": (" (thinking truncated)", "（思考被截断）"),
    "render.tokens": ("{n} tokens", "{n} 个 token"),
    "render.thinking_tokens": ("{n} thinking", "思考 {n}"),
    "render.stopped": ("stopped", "已停止"),
    "render.cut": ("cut at max new tokens", "达到最大新 token 数被截断"),
    "render.cut_context": ("cut at the context limit", "达到上下文长度上限被截断"),
    "render.cut_answer": ("cut at the answer budget", "达到回答预算被截断"),
    "render.no_answer": ("*(no answer text)*", "*（没有回答文本）*"),
    "render.error": ("**Error:**", "**错误：**"),
    "render.pdf_pages": ("*(PDF, {n} pages sent as images)*", "*（PDF，{n} 页以图片形式发送）*"),
    "render.pdf_page": ("*(PDF, 1 page sent as images)*", "*（PDF，1 页以图片形式发送）*"),
    # ------------------------------------------------------------------ job panel (components.py)
    "job.start": ("Start", "开始训练"),
    "job.resume": ("Resume", "继续训练"),
    "job.cli": ("Equivalent command (run it in a terminal to train without the app)",
                "等效命令（在终端中运行，无需本应用即可训练）"),
    "job.no_run": ("No run yet. Fill in the settings and press Start.", "还没有训练运行。请填写设置后点击“开始训练”。"),
    "job.status.running": ("running", "运行中"),
    "job.status.finished": ("finished", "已完成"),
    "job.status.failed": ("failed", "失败"),
    "job.status.stopped": ("stopped", "已停止"),
    "job.status.not_started": ("not started", "未开始"),
    "job.status.unknown": ("unknown", "未知"),
    "job.step_of": ("step {step}/{total} ({pct}%)", "第 {step}/{total} 步（{pct}%）"),
    "job.step": ("step {step}", "第 {step} 步"),
    "job.elapsed": ("elapsed {t}", "已用时 {t}"),
    "job.eta": ("ETA {t}", "预计剩余 {t}"),
    "job.stopping": ("stopping: saving a checkpoint…", "正在停止：保存检查点…"),
    "job.took": ("took {t}", "耗时 {t}"),
    "job.resume_from": ("resume from {name}", "可从 {name} 继续"),
    "job.no_checkpoint": ("no checkpoint to resume from", "没有可继续的检查点"),
    "job.adapter": ("adapter: {path}", "适配器：{path}"),
    "job.run": ("run {name}", "运行 {name}"),
    "job.public_off": ("Training is turned off on this public app; run it locally.",
                       "此公开应用已关闭训练功能，请在本地运行。"),
    "job.busy": ("A {kind} job is running (run {id}) — stop it first or wait.",
                 "已有一个 {kind} 任务在运行（运行 {id}），请先停止它或等待其结束。"),
    "job.none_running": ("No job is running.", "当前没有正在运行的任务。"),
    "job.not_started": ("Not started: the settings were refused (see the message); fix them and press Start again.",
                        "未开始：设置未通过检查（见提示）；修改后再点“开始”。"),
    "job.other_kind": ("The running job is a {kind} job (run {id}); stop it from its own tab.",
                       "正在运行的是 {kind} 任务（运行 {id}），请在它自己的标签页中停止。"),
    "job.nothing_to_resume": ("No run to resume yet; start one first.", "还没有可继续的训练运行，请先开始一次。"),
    "job.no_complete_checkpoint": ("Run {name} has no complete checkpoint yet; start a new run instead.",
                                   "运行 {name} 还没有完整的检查点，请改为开始新的运行。"),
    # ------------------------------------------------------------------ curves (components.py, rl.py)
    "curve.loss_raw_smoothed_and_eval_loss": ("Loss (raw + smoothed) and eval loss", "损失（原始 + 平滑）与验证损失"),
    "curve.token_accuracy": ("Token accuracy", "token 准确率"),
    "curve.held_out_format_rate_and_accuracy": ("Held-out format rate and accuracy", "留出集格式正确率与准确率"),
    "curve.learning_rate": ("Learning rate", "学习率"),
    "curve.grad_norm": ("Grad norm", "梯度范数"),
    "curve.tokens_s": ("Tokens / s", "每秒 token 数"),
    "curve.reward_mean_and_held_out_accuracy": ("Reward mean and held-out accuracy", "平均奖励与留出集准确率"),
    "curve.reward_std": ("Reward std", "奖励标准差"),
    "curve.format_forced_answer_truncation": ("Format / forced answer / truncation", "格式正确 / 强制回答 / 截断"),
    "curve.tier_sampling_weights": ("Tier sampling weights", "难度层级采样权重"),
    "curve.tier_pass_rates": ("Tier pass rates", "各难度层级通过率"),
    "curve.prompts_per_tier": ("Prompts per tier", "各难度层级的提示数"),
    "curve.zero_variance_groups_and_expansion": ("Zero-variance groups and expansion", "零方差组与扩展"),
    "curve.completion_length": ("Completion length", "生成长度"),
    "curve.kl": ("KL", "KL 散度"),
    "curve.loss": ("Loss", "损失"),
    "curve.reward_accuracy": ("Reward / accuracy", "奖励 / 准确率"),
    "curve.reward_mean_std": ("Reward mean ± std", "平均奖励 ± 标准差"),
    "curve.held_out_accuracy": ("Held-out accuracy", "留出集准确率"),
    "curve.format_forced_truncated_rate": ("Format / forced / truncated rate", "格式正确 / 强制回答 / 截断比例"),
    "curve.pass_rate_per_tier": ("Pass rate per tier", "各难度层级通过率"),
    "curve.tier_sampling_weights_stacked": ("Tier sampling weights (stacked)", "难度层级采样权重（堆叠）"),
    "curve.zero_variance_fraction_expansion_ema": ("Zero-variance fraction · expansion EMA", "零方差比例 · 扩展 EMA"),
    "curve.effective_batch_prompts_rolled_out_informative_groups": (
        "Effective batch (prompts rolled out · informative groups)", "有效批量（已 rollout 的提示 · 有效组）"),
    "curve.completion_length_tokens": ("Completion length (tokens)", "生成长度（token）"),
    "curve.kl_to_base_adapter_off_probe": ("KL to base (adapter-off probe)", "相对基础模型的 KL（关闭适配器探测）"),
}

#: The catalog: key → {"en": …, "zh": …}.
CATALOG: dict[str, dict[str, str]] = {k: {"en": en, "zh": zh} for k, (en, zh) in _ENTRIES.items()}

_default_lang = "en"
_default_auto = True  # no app default set: honour the browser's Accept-Language
_SESSIONS: "OrderedDict[str, str]" = OrderedDict()
_SESSIONS_LOCK = threading.Lock()
_MAX_SESSIONS = 10_000
_I18N = None


def normalize(lang: str | None) -> str | None:
    """A language tag → ``"en"`` / ``"zh"``, or None when it is neither.

    ``zh``, ``zh-CN``, ``zh_Hans``, ``zh-TW`` … → ``"zh"`` (the catalog is Simplified
    Chinese; it is the closest we have for Traditional readers); ``en-US`` → ``"en"``.
    """
    if not lang:
        return None
    base = re.split(r"[-_]", str(lang).strip().lower(), maxsplit=1)[0]
    return base if base in LANGS else None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an HTTP ``Accept-Language`` header (q-weights honoured).

    >>> from_accept_language("fr-FR,zh-CN;q=0.8,en;q=0.5")
    'zh'
    """
    best, best_q = None, -1.0
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        m = re.search(r"q\s*=\s*([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0
        lang = normalize(tag)
        if lang and q > best_q:  # earlier wins ties
            best, best_q = lang, q
    return best


def set_default(lang: str | None) -> str:
    """Set the app-wide default language (``AppContext.language``); returns the one in use.

    ``"en"`` / ``"zh"``: every page starts in it (until the visitor switches) and requests
    without a session choice get it. ``"auto"`` (or an unknown value): the browser's
    language — the page starts in the browser locale and the server reads
    ``Accept-Language`` — with English as the last fallback. One default per process
    (the last app built sets it).
    """
    global _default_lang, _default_auto
    fixed = normalize(lang)
    _default_lang, _default_auto = fixed or "en", fixed is None
    return _default_lang


def default_language() -> str:
    """The app-wide fallback language (``"en"`` unless :func:`set_default` said otherwise)."""
    return _default_lang


def set_session_language(session_hash: str | None, lang: str | None) -> str:
    """Remember ``lang`` for a browser session (the header switch calls this).

    Returns the normalized language (English for an unknown value). At most
    10 000 sessions are kept (oldest dropped).
    """
    lang = normalize(lang) or _default_lang
    if session_hash:
        with _SESSIONS_LOCK:
            _SESSIONS[session_hash] = lang
            _SESSIONS.move_to_end(session_hash)
            while len(_SESSIONS) > _MAX_SESSIONS:
                _SESSIONS.popitem(last=False)
    return lang


def forget_session(session_hash: str | None) -> None:
    """Drop a session's language (on page unload)."""
    with _SESSIONS_LOCK:
        _SESSIONS.pop(session_hash or "", None)


def request_language(request: Any = None) -> str:
    """Language of a request: session choice → app default, or with the ``"auto"`` default
    session choice → ``Accept-Language`` → English.

    Args:
        request: a ``gr.Request``; None means the request gradio is serving in this
            thread (``gradio.context.LocalContext.request``), if any.
    """
    if request is None:
        ctx_mod = sys.modules.get("gradio.context")  # not loaded (CLI): no request is being served
        request = ctx_mod.LocalContext.request.get(None) if ctx_mod is not None else None
    if request is None:
        return _default_lang
    sh = getattr(request, "session_hash", None)
    if sh:
        with _SESSIONS_LOCK:
            lang = _SESSIONS.get(sh)
        if lang:
            return lang
    if not _default_auto:
        return _default_lang
    headers = getattr(request, "headers", None)
    header = None
    if headers is not None:
        try:
            header = headers.get("accept-language")
        except (AttributeError, TypeError):
            header = None
    return from_accept_language(header) or _default_lang


def current_language() -> str:
    """Language of the request being served now (see :func:`request_language`)."""
    return request_language(None)


def tr(key: str, lang: str | None = None, **fmt: Any) -> str:
    """The text of ``key`` in ``lang`` (default: :func:`current_language`), formatted.

    Unknown languages fall back to English; a ``fmt`` placeholder missing in one language
    is an error in the catalog (tests check both languages use the same placeholders).

    Raises:
        KeyError: ``key`` is not in :data:`CATALOG` (a programming error, caught by tests).
    """
    entry = CATALOG[key]
    lang = normalize(lang) if lang is not None else current_language()
    text = entry.get(lang or "en") or entry["en"]
    return text.format(**fmt) if fmt else text


def t(key: str):
    """Static UI text for ``key``: a ``gradio.i18n.I18nData`` the browser translates.

    Raises:
        KeyError: ``key`` is not in :data:`CATALOG` (fails when the app is built).
    """
    from gradio.i18n import I18nData

    if key not in CATALOG:
        raise KeyError(f"i18n key {key!r} is not in studio.ui.i18n.CATALOG")
    return I18nData(key)


def headers(prefix: str, names: Sequence[str], lang: str | None = None) -> list[str]:
    """Table column names in ``lang`` (gradio's frontend does not translate Dataframe headers).

    ``headers("runs.col", ["id", "loss/reward"])`` reads ``runs.col.id``, ``runs.col.loss_reward``.
    """
    return [tr(f"{prefix}.{re.sub(r'[^A-Za-z0-9_]', '_', n)}", lang) for n in names]


def curve_key(title: str) -> str:
    """Catalog key of a plot title: ``"Tokens / s"`` → ``"curve.tokens_s"``."""
    return "curve." + "_".join(re.findall(r"[a-z0-9]+", title.lower()))


def curve_label(title: str):
    """A plot title as static UI text (:func:`t`) when the catalog has it, else as given."""
    key = curve_key(title)
    return t(key) if key in CATALOG else title


def gradio_i18n():
    """The ``gr.I18n`` with the whole catalog (``en`` and ``zh``), built once."""
    global _I18N
    if _I18N is None:
        import gradio as gr

        _I18N = gr.I18n(**{lang: {k: v[lang] for k, v in CATALOG.items()} for lang in LANGS})
    return _I18N


def error_text(message: Any, lang: str | None = None) -> str:
    """An engine error sentence (kept in English) behind the translated prefix."""
    return tr("err.prefix", lang, msg=str(message))


def user_error(message: str, lang: str | None = None):
    """``gr.Error`` toast for an expected refusal (bad input, busy GPU, nothing to do): a
    translated title, and one INFO line in the server log instead of gradio's full
    traceback (``print_exception=False``). Bugs are logged with their traceback by the
    caller (``log.exception``) before they get here."""
    import gradio as gr

    log.info("refused: %s", message)
    return gr.Error(message, title=tr("err.title", lang), print_exception=False)


def gr_error(e: BaseException | str, lang: str | None = None):
    """``gr.Error`` for a StudioError (or a message) with a translated title and prefix."""
    import gradio as gr

    if isinstance(e, gr.Error):
        return e
    return user_error(error_text(e, lang), lang)


def unexpected_error(e: BaseException, lang: str | None = None):
    """``gr.Error`` for a bug (already logged with its traceback): one translated line
    naming the exception type."""
    return user_error(tr("err.unexpected", lang, kind=type(e).__name__), lang)


# --------------------------------------------------------------------------- header switch
_SET_LOCALE_JS = """
async function studioSetLocale(lang) {
  window.__studioLang = lang;
  const code = %(locales)s[lang] || "en";
  const names = performance.getEntriesByType("resource").map((e) => e.name)
    .concat(Array.from(document.querySelectorAll("script[src], link[rel=modulepreload]"),
                       (el) => el.src || el.href));
  const url = names.find((n) => /\\/core-[^/?#]*\\.js(\\?|$)/.test(n));
  if (!url) { console.warn("studio: gradio core module not found; language not switched"); return; }
  const core = await import(url);
  if (typeof core.changeLocale === "function") core.changeLocale(code);
  document.documentElement.lang = code;
}
function studioShownLang() {
  const el = document.querySelector("#%(code_id)s");
  const code = ((el && (el.innerText || el.textContent)) || "").trim();
  return %(langs)s.includes(code) ? code : null;
}
"""


def _js(body: str) -> str:
    import json

    return "async (lang) => {\n" + _SET_LOCALE_JS % {
        "locales": json.dumps(FRONTEND_LOCALE), "langs": json.dumps(list(LANGS)), "code_id": CODE_ID,
    } + body + "\n}"


def switch_js() -> str:
    """JS of the switch's ``input`` event: save the choice, switch the frontend locale."""
    return _js(f"""
  try {{ localStorage.setItem({STORAGE_KEY!r}, lang); }} catch (e) {{}}
  await studioSetLocale(lang);
  return lang;""")


def load_js(default: str) -> str:
    """JS of the page-load event: saved choice, else ``default`` (``auto``: the browser's).

    It also watches the hidden language-code text (:data:`CODE_ID`): when gradio's own
    *Settings → Language* chooser changes the locale, that text changes and the hidden
    sync button (:data:`SYNC_ID`) tells the server and the header switch.
    """
    import json

    return _js(f"""
  let want = null;
  try {{ want = localStorage.getItem({STORAGE_KEY!r}); }} catch (e) {{}}
  if (!{json.dumps(list(LANGS))}.includes(want)) want = {json.dumps(default)};
  if (want === "auto") want = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  await studioSetLocale(want);
  const codeEl = document.querySelector("#{CODE_ID}");
  if (codeEl && !window.__studioLangObserver) {{
    window.__studioLangObserver = new MutationObserver(() => {{
      const shown = studioShownLang();
      if (shown && shown !== window.__studioLang) {{
        window.__studioLang = shown;
        const btn = document.querySelector("#{SYNC_ID}");
        if (btn) btn.click();
      }}
    }});
    window.__studioLangObserver.observe(codeEl, {{subtree: true, childList: true, characterData: true}});
  }}
  return want;""")


def sync_js() -> str:
    """JS of the hidden sync button: the language the page shows now (saved as the choice)."""
    return _js(f"""
  const shown = studioShownLang() || lang;
  window.__studioLang = shown;
  try {{ localStorage.setItem({STORAGE_KEY!r}, shown); }} catch (e) {{}}
  return shown;""")


@dataclass
class LanguageSwitch:
    """The header switch: the dropdown plus two hidden helpers (see :func:`load_js`)."""

    dropdown: Any
    code: Any
    sync: Any


def language_switch(default: str = "en") -> LanguageSwitch:
    """Add the header language dropdown (English / 简体中文); wire it with :func:`connect_switch`.

    Also adds, visually hidden, a Markdown holding the catalog's language code (the
    browser shows ``en`` or ``zh`` in the current locale) and a sync button.

    Returns:
        :class:`LanguageSwitch` (the dropdown's ``elem_id`` is :data:`SWITCH_ID`).
    """
    import gradio as gr

    start = normalize(default) or "en"
    dd = gr.Dropdown([(LANG_NAMES[x], x) for x in LANGS], value=start, label=t("app.lang_label"),
                     show_label=False, container=False, interactive=True, elem_id=SWITCH_ID, scale=0,
                     min_width=130)
    code = gr.Markdown(t("app.lang_code"), elem_id=CODE_ID, visible="hidden")
    sync = gr.Button(t("app.lang_label"), elem_id=SYNC_ID, visible="hidden")
    return LanguageSwitch(dd, code, sync)


def connect_switch(switch: LanguageSwitch, default: str = "en", relabel: Sequence[tuple[Any, str]] = ()) -> None:
    """Events of the header switch; call once the whole page (all tabs) is built.

    On page load the saved choice (``localStorage``), else ``default`` (``"auto"``: the
    browser's language) is applied; choosing a language switches every static label at
    once, keeps all component values, and makes this session's run-time messages use it.
    A change made in gradio's footer *Settings → Language* is picked up the same way.

    Args:
        switch: what :func:`language_switch` returned.
        default: ``ctx.language``.
        relabel: ``(gr.Tab, key)`` pairs. The frontend computes the tab bar once, so a tab
            not yet opened keeps its old label after a locale change unless its label is
            sent again; these updates do that.
    """
    import gradio as gr
    from gradio.context import Context

    tabs = [c for c, _ in relabel]
    dd = switch.dropdown

    def labels():
        return [gr.update(label=t(key)) for _, key in relabel]

    def remember(lang, request: gr.Request):
        return [set_session_language(getattr(request, "session_hash", None), lang), *labels()]

    def on_input(lang, request: gr.Request):
        set_session_language(getattr(request, "session_hash", None), lang)
        return labels() if tabs else None

    dd.input(on_input, [dd], tabs or None, js=switch_js(), queue=False, show_progress="hidden",
             api_visibility="undocumented")
    switch.sync.click(remember, [dd], [dd, *tabs], js=sync_js(), queue=False, show_progress="hidden",
                      api_visibility="undocumented")
    root = Context.root_block
    if root is not None:
        root.load(remember, [dd], [dd, *tabs], js=load_js(str(default or "en")), queue=False,
                  show_progress="hidden", api_visibility="undocumented")
