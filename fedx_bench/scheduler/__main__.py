"""``python -m fedx_bench.scheduler``: a run process (job as JSON on stdin) or a zygote (``--zygote PID``); the
supervisors start it (see ``zygote``). It leaves without interpreter teardown: every result file is written."""

from .zygote import _exit, main

_exit(main())
