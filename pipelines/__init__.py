"""Entry points and the only code that touches Ray and MLflow."""
