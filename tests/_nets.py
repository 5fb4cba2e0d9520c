"""Small seeded networks shared by several test modules (not a test file)."""
import torch
from torch import nn

DT = torch.float64


def small_cnn(seed=0):
    """conv-relu-pool-conv-relu-flatten-linear-relu-linear, float64, weights N(0, 0.3^2), eval."""
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                      nn.Linear(8 * 16, 12), nn.ReLU(), nn.Linear(12, 5)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.3)
    return m.eval()


X = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=DT)
