"""Chat with a GLM-4.1V model about images, a video or a PDF in the terminal.

Same engine as the Chat tab (:func:`studio.engine.infer.chat.stream`): thinking streams
dimmed and prefixed, the answer follows, then one stats line on stderr. Ctrl-C stops
generation cleanly (the worker thread is stopped and joined) and exits with 130.

Example::

    studio chat --image photo.jpg "What is in this picture?"
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from studio.commands.ui import add_model_arguments, model_spec
from studio.config import GenerationConfig

DIM, RESET = "\033[2m", "\033[0m"
THINK_PREFIX = "thinking │ "


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="your question")
    p.add_argument("--image", action="append", default=[], metavar="PATH",
                   help="an image (repeat for up to 10)")
    p.add_argument("--video", action="append", default=[], metavar="PATH", help="one video clip")
    p.add_argument("--pdf", action="append", default=[], metavar="PATH", help="one PDF (pages become images)")
    p.add_argument("--system", default=None, help="system prompt")
    add_model_arguments(p)
    d = GenerationConfig()
    g = p.add_argument_group("sampling (unset: the checkpoint's generation_config, else the Studio's defaults)")
    g.add_argument("--temperature", type=float, default=None, help=f"0 = greedy (Studio default {d.temperature})")
    g.add_argument("--top-p", type=float, default=None, help=f"(Studio default {d.top_p})")
    g.add_argument("--top-k", type=int, default=None, help=f"0 = off (Studio default {d.top_k})")
    g.add_argument("--repetition-penalty", type=float, default=None,
                   help=f"(Studio default {d.repetition_penalty})")
    g.add_argument("--no-thinking", action="store_true",
                   help="switch thinking off (models whose template has enable_thinking, e.g. "
                        "GLM-4.6V-Flash; refused for GLM-4.1V-Thinking)")
    g.add_argument("--max-new-tokens", type=int, default=None, help=f"(Studio default {d.max_new_tokens})")
    g.add_argument("--thinking-budget", type=int, default=d.thinking_budget,
                   help="tokens allowed inside <think>; then the model's family closes thinking and opens the answer "
                        "(GLM-4.1V: </think><answer>) (0 = off)")
    g.add_argument("--answer-budget", type=int, default=d.answer_budget,
                   help="tokens allowed after a forced answer")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--fps", type=float, default=d.video_fps, help="video frames sampled per second")
    g.add_argument("--max-frames", type=int, default=d.max_frames, help="cap on video frames")
    p.add_argument("--boxes-out", default=None, metavar="PNG",
                   help="if the answer has boxes, save the first image with them drawn here")
    p.add_argument("--no-color", action="store_true", help="never use ANSI colours (also: NO_COLOR=1)")


class Printer:
    """Writes thinking (dimmed, each line prefixed) and the answer to a text stream."""

    def __init__(self, out, color: bool):
        self.out, self.color = out, color
        self.mode: str | None = None  # "thinking" | "answer"
        self.at_line_start = True

    def _switch(self, mode: str) -> None:
        if self.mode == mode:
            return
        if self.mode is not None and not self.at_line_start:
            self.out.write("\n")
            self.at_line_start = True
        if self.mode == "thinking" and self.color:
            self.out.write(RESET)
        self.mode = mode
        if mode == "thinking" and self.color:
            self.out.write(DIM)

    def thinking(self, text: str) -> None:
        self._switch("thinking")
        for piece in text.splitlines(keepends=True):
            if self.at_line_start:
                self.out.write(THINK_PREFIX)
            self.out.write(piece)
            self.at_line_start = piece.endswith("\n")
        self.out.flush()

    def answer(self, text: str) -> None:
        self._switch("answer")
        self.out.write(text)
        self.at_line_start = text.endswith("\n") if text else self.at_line_start
        self.out.flush()

    def note(self, text: str) -> None:
        self._switch("note")
        self.out.write(text + "\n")
        self.at_line_start = True
        self.out.flush()

    def finish(self) -> None:
        if self.mode == "thinking" and self.color:
            self.out.write(RESET)
        if not self.at_line_start:
            self.out.write("\n")
        self.out.flush()


def _apply(gen: GenerationConfig, values: dict) -> GenerationConfig:
    for k, v in values.items():
        setattr(gen, k, v)
    return gen


def run(args: argparse.Namespace) -> int:
    from studio.engine.infer import chat, media
    from studio.engine.infer.models import load
    from studio.errors import InputError
    from studio.ui.render import draw_boxes, stats_line

    files = list(args.image) + list(args.video) + list(args.pdf)
    gen = GenerationConfig(
        thinking_budget=args.thinking_budget, answer_budget=args.answer_budget, seed=args.seed,
        video_fps=args.fps, max_frames=args.max_frames,
    )
    explicit = {k: v for k, v in dict(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                      repetition_penalty=args.repetition_penalty,
                                      max_new_tokens=args.max_new_tokens).items() if v is not None}
    _apply(gen, explicit).validate()
    if not args.prompt.strip() and not files:
        raise InputError("Give a question, e.g. studio chat --image photo.jpg \"What is in this picture?\"")
    spec = model_spec(args)
    turn_media = media.prepare_turn_media(files, fps=gen.video_fps, max_frames=gen.max_frames) if files else None
    from studio.engine.infer import family
    from studio.engine.infer.models import resolve

    if args.no_thinking and os.path.isdir(resolve(spec.name_or_path)):  # refuse before a long load
        family.from_dir(resolve(spec.name_or_path)).template_kwargs(False)
    model, processor = load(spec)
    from studio.engine.infer.models import is_embedded

    fam = family.of(processor, model)
    fam.template_kwargs(False if args.no_thinking else None)  # refuse before generating
    gen = _apply(fam.generation_defaults(gen), explicit)  # checkpoint defaults, then the flags
    gen.validate()
    if is_embedded(getattr(model, "studio_path", "")):
        print(f"note: tiny {fam.label} replica with random weights: the text is not meaningful; "
              "the pipeline is real. Use --model toy-thinking or a real checkpoint.", file=sys.stderr)
    history = [chat.ChatTurn("user", args.prompt, turn_media)]
    color = sys.stdout.isatty() and not args.no_color and not os.environ.get("NO_COLOR")
    out = Printer(sys.stdout, color)
    stop = threading.Event()
    done = None
    try:
        for ev in chat.stream(model, processor, history, gen, system=args.system, stop=stop,
                              thinking=False if args.no_thinking else None):
            if isinstance(ev, chat.ThinkingDelta):
                out.thinking(ev.text)
            elif isinstance(ev, chat.AnswerDelta):
                out.answer(ev.text)
            elif isinstance(ev, chat.ForcedAnswer):
                out.note(f"[thinking truncated after {ev.thinking_tokens} tokens: answer forced]")
            elif isinstance(ev, chat.Done):
                done = ev
    except KeyboardInterrupt:
        stop.set()  # the stream's finally already stopped and joined the worker
        out.finish()
        print("[stopped]", file=sys.stderr)
        return 130
    out.finish()
    assert done is not None
    if done.parsed.boxes:
        img = turn_media.images[0] if turn_media is not None and turn_media.images else None
        for i, b in enumerate(done.parsed.boxes, 1):
            px = f" = pixels {b.to_pixels(img.width, img.height)}" if img is not None else ""
            print(f"box {i}: [{b.x1:g},{b.y1:g},{b.x2:g},{b.y2:g}] (0-1000){px}", file=sys.stderr)
        if args.boxes_out and img is not None:
            draw_boxes(img, done.parsed.boxes).save(args.boxes_out)
            print(f"boxes drawn on {args.boxes_out}", file=sys.stderr)
        elif args.boxes_out:
            print(f"no image to draw the boxes on: {args.boxes_out} not written", file=sys.stderr)
    elif args.boxes_out:
        print(f"the answer has no box: {args.boxes_out} not written", file=sys.stderr)
    print(stats_line(done.stats), file=sys.stderr)
    return 0
