"""The asset graph: ingestion → preparation → modeling → scoring."""

from churn_pipeline.assets.ingestion import raw_customers
from churn_pipeline.assets.modeling import churn_model
from churn_pipeline.assets.preparation import clean_customers, customer_features
from churn_pipeline.assets.scoring import churn_kpis, scored_customers

ALL_ASSETS = [raw_customers, clean_customers, customer_features, churn_model, scored_customers, churn_kpis]
