from celery.utils.dispatch.signal import Signal

before_task_publish: Signal
task_prerun: Signal
task_postrun: Signal
celeryd_init: Signal
setup_logging: Signal
worker_process_shutdown: Signal
