"""The code MLflow stores with each registered model and runs to build it (MLflow's "models from code").

Storing this file instead of a pickled object means loading a model version unpickles nothing of ours;
it imports ``flows.serving`` from the installed project, where the model's behaviour lives.
"""

import mlflow.models

from flows.serving import StvgGroundingModel

mlflow.models.set_model(StvgGroundingModel())
