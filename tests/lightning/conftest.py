import sys
from pathlib import Path

# test helpers (gan.py here, mmengine_reference.py one level up) import as top-level modules
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
