"""Drive a CLI that asks questions on a terminal (npm's password prompts)."""

from __future__ import annotations

import asyncio
import os
import pty
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


async def run_on_tty(
    argv: Sequence[str],
    answers: Sequence[tuple[str, str | Callable[[str], str]]],
    *,
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    timeout: float = 120,
) -> tuple[int, str]:
    """Run `argv` on a pseudo-terminal, typing each answer once its prompt shows.

    An answer may be a function of the output so far (a one-time password
    computed from the secret the program just printed).

    Returns the exit code and everything the program wrote; raises
    AssertionError with that output when it does not finish in `timeout`.
    """
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=dict(env), stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            loop.remove_reader(master)
        chunks.put_nowait(data)

    loop.add_reader(master, readable)
    output, seen, pending = "", 0, list(answers)
    try:
        async with asyncio.timeout(timeout):
            while data := await chunks.get():
                output += data.decode(errors="replace")
                while pending and pending[0][0] in output[seen:]:
                    prompt, answer = pending.pop(0)
                    seen = output.index(prompt, seen) + len(prompt)
                    typed = answer(output) if callable(answer) else answer
                    os.write(master, typed.encode() + b"\r")
            code = await proc.wait()
    except TimeoutError:
        raise AssertionError(f"{' '.join(argv)} on a terminal did not finish in {timeout:.0f}s:\n{output}") from None
    finally:
        loop.remove_reader(master)
        os.close(master)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return code, output
