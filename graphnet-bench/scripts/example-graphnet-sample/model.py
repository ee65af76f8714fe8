import torch
class GraphModule(torch.nn.Module):
    def forward(self, L_x_ : torch.Tensor, L_self_modules_fc_parameters_weight_ : torch.nn.parameter.Parameter, L_self_modules_fc_parameters_bias_ : torch.nn.parameter.Parameter, s0 : torch.SymInt):
        l_x_ = L_x_
        linear = torch._C._nn.linear(l_x_, L_self_modules_fc_parameters_weight_, L_self_modules_fc_parameters_bias_);  l_x_ = None
        relu = torch.nn.functional.relu(linear, inplace = False);  linear = None
        view = relu.view(s0, -1);  relu = None
        return (view,)
