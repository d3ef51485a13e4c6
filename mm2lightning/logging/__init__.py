"""MMEngine's ``mmengine.logging``: ``MessageHub``, ``HistoryBuffer``, ``MMLogger`` and ``print_log``.

Plain Python and PyTorch (no Lightning). ``MessageHub.update_scalar`` takes device
tensors without a host sync: they are converted when a buffer is read.
"""

from mm2lightning.logging.history_buffer import HistoryBuffer
from mm2lightning.logging.logger import MMFormatter, MMLogger, print_log
from mm2lightning.logging.message_hub import MessageHub

__all__ = ["HistoryBuffer", "MMFormatter", "MMLogger", "MessageHub", "print_log"]
