// RUN: peft-opt %s --split-input-file --verify-diagnostics '--peft-optimizer=schedule=constant'

// expected-error @+1 {{peft-optimizer: the module has no function @train_step with a body (run peft-differentiate first)}}
module {
  peft.param @w : tensor<3xf32> trainable init "zeros"
  func.func @loss(%x: tensor<3xf32>) -> tensor<f32> {
    %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

peft.param @w : tensor<3xf32> trainable init "zeros"
// expected-error @+1 {{@train_step returns no gradient (no result with peft.grad_of)}}
func.func @train_step(%x: tensor<3xf32>) -> tensor<f32> {
  %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

peft.param @w : tensor<3xf32> frozen init "zeros"
// expected-error @+1 {{result 1 is the gradient of @w, which is not a trainable peft.param of type 'tensor<3xf32>'}}
func.func @train_step(%x: tensor<3xf32>) -> (tensor<f32>, tensor<3xf32> {peft.grad_of = @w}) {
  %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
  return %l, %x : tensor<f32>, tensor<3xf32>
}

// -----

// Running the pass twice would add a second update.
peft.param @w : tensor<3xf32> trainable init "zeros"
// expected-error @+1 {{peft-optimizer: the module already has an optimizer update}}
peft.param @w.exp_avg : tensor<3xf32> frozen init "zeros" {peft.state_of = @w}
func.func @train_step(%x: tensor<3xf32>) -> (tensor<f32>, tensor<3xf32> {peft.grad_of = @w}) {
  %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
  return %l, %x : tensor<f32>, tensor<3xf32>
}

// -----

// The spec's settings win over the options: a cosine schedule whose length
// neither the spec nor the options give.
module attributes {peft.spec = "{\22methods\22:[{\22peft_type\22:\22FULL\22}],\22training\22:{\22inputs\22:{},\22loss\22:{\22type\22:\22cross_entropy\22,\22logits\22:\22logits\22,\22labels\22:\22labels\22,\22shift\22:\22causal\22,\22ignore_index\22:-100},\22optimizer\22:{\22type\22:\22adamw\22,\22lr\22:0.001,\22betas\22:[0.9,0.999],\22eps\22:1e-08,\22weight_decay\22:0,\22no_decay\22:[\22bias\22,\22norm\22]},\22schedule\22:{\22type\22:\22cosine\22,\22warmup_steps\22:0,\22warmup_ratio\22:null,\22total_steps\22:null,\22num_cycles\22:0.5},\22max_grad_norm\22:1,\22gradient_accumulation_steps\22:1,\22seed\22:42,\22batch_size\22:null,\22shuffle\22:true,\22pad_token_id\22:null}}"} {
  peft.param @w : tensor<3xf32> trainable init "zeros"
  // expected-error @+1 {{peft-optimizer: a cosine schedule needs the run's length: set training.schedule.total_steps or the option total-steps}}
  func.func @train_step(%x: tensor<3xf32>) -> (tensor<f32>, tensor<3xf32> {peft.grad_of = @w}) {
    %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
    return %l, %x : tensor<f32>, tensor<3xf32>
  }
}

// -----

module attributes {peft.spec = "{\22methods\22:[{\22peft_type\22:\22FULL\22}],\22training\22:{\22inputs\22:{},\22loss\22:{\22type\22:\22cross_entropy\22,\22logits\22:\22logits\22,\22labels\22:\22labels\22,\22shift\22:\22causal\22,\22ignore_index\22:-100},\22optimizer\22:{\22type\22:\22adamw\22,\22lr\22:5e-05,\22betas\22:[0.9,0.999],\22eps\22:1e-08,\22weight_decay\22:0,\22no_decay\22:[\22bias\22,\22norm\22]},\22schedule\22:{\22type\22:\22constant\22,\22warmup_steps\22:null,\22warmup_ratio\22:0.1,\22total_steps\22:null},\22max_grad_norm\22:1,\22gradient_accumulation_steps\22:1,\22seed\22:42,\22batch_size\22:null,\22shuffle\22:true,\22pad_token_id\22:null}}"} {
  peft.param @w : tensor<3xf32> trainable init "zeros"
  // expected-error @+1 {{peft-optimizer: warmup_ratio needs the run's length: set training.schedule.total_steps or the option total-steps}}
  func.func @train_step(%x: tensor<3xf32>) -> (tensor<f32>, tensor<3xf32> {peft.grad_of = @w}) {
    %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
    return %l, %x : tensor<f32>, tensor<3xf32>
  }
}

// -----

// expected-error @+1 {{peft-optimizer: invalid `peft.spec` attribute}}
module attributes {peft.spec = "{\22methods\22: []}"} {
  peft.param @w : tensor<3xf32> trainable init "zeros"
  func.func @train_step(%x: tensor<3xf32>) -> (tensor<f32>, tensor<3xf32> {peft.grad_of = @w}) {
    %l = nn.reduce_sum %x axes [0] : tensor<3xf32> -> tensor<f32>
    return %l, %x : tensor<f32>, tensor<3xf32>
  }
}
