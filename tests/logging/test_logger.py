"""MMLogger and print_log against mmengine's: formats, files, ranks, instances and print_log's targets."""

from __future__ import annotations

import logging
import re
import uuid

import pytest

from mm2lightning.logging import MMLogger, print_log

_TIME = re.compile(r"^\d{2,4}/\d{2}(/\d{2})? \d{2}:\d{2}:\d{2}", re.MULTILINE)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _emit(logger: logging.Logger) -> None:
    logger.debug("debug line")
    logger.info("info line")
    logger.warning("warned once")
    logger.warning("warned once")  # dropped: a repeated warning
    logger.error("error line")  # with the place in the code


def _lines(text: str, cls_module: str) -> list[str]:
    text = _TIME.sub("<time>", text)
    return [line.replace(cls_module, "<file>") for line in text.splitlines()]


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG", logging.WARNING])
def test_console_and_file_output_as_mmengine(mmengine, tmp_path, capsys, monkeypatch, log_level):
    from mmengine.logging import MMLogger as MMMMLogger

    monkeypatch.setenv("NO_COLOR", "1")  # the same (no) colour codes from both, whatever the terminal
    outputs = {}
    for label, cls in (("ours", MMLogger), ("ref", MMMMLogger)):
        log_file = tmp_path / f"{label}.log"
        logger = cls.get_instance(_name(label), logger_name="demo", log_file=str(log_file), log_level=log_level)
        assert logger.name == "demo" and logger.log_file == str(log_file)
        _emit(logger)
        for handler in logger.handlers:
            handler.flush()
        outputs[label] = (capsys.readouterr().out, log_file.read_text())
    this_file = __file__
    assert _lines(outputs["ours"][0], this_file) == _lines(outputs["ref"][0], this_file)
    assert _lines(outputs["ours"][1], this_file) == _lines(outputs["ref"][1], this_file)
    assert "error line" in outputs["ours"][1] and outputs["ours"][0].count("warned once") == 1


@pytest.mark.parametrize("colour", ["FORCE_COLOR", "NO_COLOR"])
def test_level_formats_and_colours_match_mmengine_formatter(mmengine, monkeypatch, colour):
    from mmengine.logging.logger import MMFormatter as MMMMFormatter
    from termcolor.termcolor import can_colorize

    from mm2lightning.logging import MMFormatter

    monkeypatch.setenv(colour, "1")
    can_colorize.cache_clear()  # termcolor decides once per process
    try:
        for color, blink in ((True, False), (True, True), (False, False)):
            ours, ref = MMFormatter(color=color, blink=blink), MMMMFormatter(color=color, blink=blink)
            for attr in ("err_format", "warn_format", "info_format", "debug_format"):
                assert getattr(ours, attr) == getattr(ref, attr)
            assert ("\033[" in ours.err_format) == (color and colour == "FORCE_COLOR")
    finally:
        can_colorize.cache_clear()
    with pytest.raises(AssertionError):
        MMFormatter(color=False, blink=True)


@pytest.mark.parametrize("distributed", [False, True])
def test_other_ranks_print_errors_only_and_write_a_file_when_distributed(mmengine, tmp_path, monkeypatch, distributed):
    """Rank 1 of 2: the console handler passes errors only; a file only with ``distributed`` (own name)."""
    import mmengine.logging.logger as mm_logger
    from mmengine.logging import MMLogger as MMMMLogger

    monkeypatch.setenv("RANK", "1")  # ours reads the launcher's rank before a process group exists
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(mm_logger, "_get_rank", lambda: 1)
    monkeypatch.setattr(mm_logger, "_get_world_size", lambda: 2)
    handlers = {}
    for label, cls in (("ours", MMLogger), ("ref", MMMMLogger)):
        (tmp_path / label).mkdir()
        logger = cls.get_instance(_name(label), log_file=str(tmp_path / label / "run.log"), distributed=distributed)
        # the kind of each handler (ours writes to the sys.stdout of the moment: a StreamHandler subclass)
        handlers[label] = [(next(c.__name__ for c in type(h).__mro__ if not c.__name__.startswith("_")), h.level)
                           for h in logger.handlers]
        if distributed:
            assert re.fullmatch(r"run_.*_device\d+_rank1\.log", logger.log_file.rsplit("/", 1)[1])
    assert handlers["ours"] == handlers["ref"]
    assert handlers["ours"][0] == ("StreamHandler", logging.ERROR)
    assert len(handlers["ours"]) == (2 if distributed else 1)


def test_file_handler_cfg_as_mmengine(mmengine, tmp_path):
    from mmengine.logging import MMLogger as MMMMLogger

    for cls in (MMLogger, MMMMLogger):
        logger = cls.get_instance(
            _name("rot"), log_file=str(tmp_path / "rot.log"),
            file_handler_cfg=dict(type="RotatingFileHandler", maxBytes=100, backupCount=1),
        )
        assert type(logger.handlers[1]).__name__ == "RotatingFileHandler"
        with pytest.raises(ValueError, match="does not contain"):
            cls.get_instance(_name("bad"), log_file=str(tmp_path / "x.log"), file_handler_cfg=dict(type="Nope"))


def test_instances_and_current_as_mmengine(mmengine):
    from mmengine.logging import MMLogger as MMMMLogger

    first, second = _name("first"), _name("second")
    for cls in (MMLogger, MMMMLogger):
        logger_a, logger_b = cls.get_instance(first), cls.get_instance(second)
        assert cls.get_instance(first) is logger_a and cls.get_current_instance() is logger_b
        assert logger_a is not logging.getLogger(logger_a.name)  # not managed by logging
        logger_a.setLevel("ERROR")
        assert logger_a.level == logging.ERROR and not logger_a.isEnabledFor(logging.INFO)


def test_print_log_targets(mmengine, capsys):
    from mmengine.logging import print_log as mm_print_log

    from mmengine.logging import MMLogger as MMMMLogger

    for function, cls in ((print_log, MMLogger), (mm_print_log, MMMMLogger)):
        name = _name("target")
        logger = cls.get_instance(name, logger_name="target")
        function("to stdout")
        function("nothing", logger="silent")
        function("by name", logger=name)
        function("as logger", logger=logger, level=logging.WARNING)
        with pytest.raises(ValueError, match="has not been created"):
            function("x", logger=_name("missing"))
        with pytest.raises(TypeError, match="should be either"):
            function("x", logger=1)
    out = capsys.readouterr().out
    assert out.count("to stdout\n") == 2 and "nothing" not in out
    assert out.count("target - INFO - by name") == 2
    assert out.count("target - WARNING - as logger") == 2
    MMLogger.get_instance(_name("newest"), logger_name="newest")
    print_log("to the current one", logger="current")
    assert "newest - INFO - to the current one" in capsys.readouterr().out


def test_the_console_handler_writes_to_the_current_stdout():
    """A logger built while another stdout was in place (closed since, e.g. a test's capture) still writes."""
    import contextlib
    import io

    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(first):
        logger = MMLogger.get_instance(_name("console"))
    first.close()
    with contextlib.redirect_stdout(second):
        logger.info("after the first stdout closed")
    assert "after the first stdout closed" in second.getvalue()
