"""The pyfunc model file that MLflow runs to build the model ("models from code").

``save_model``/``log_model`` hand MLflow this file instead of a pickled object; loading
the model executes it, which builds :class:`~transfuse_mlflow.flavor.TransfuseModel`, whose
``load_context`` restores the run directory shipped as the ``run`` artifact.
"""

from mlflow.models import set_model

from transfuse_mlflow.flavor import TransfuseModel

set_model(TransfuseModel())
